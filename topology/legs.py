"""What one data mover can do for a volume: the read and write legs every working route combines."""
from __future__ import annotations

from dataclasses import dataclass

from topology.report import Route


@dataclass
class MoverLegs:
    """Everything one mover can do for a volume: read pairs x write pairs are all working routes."""

    mover: str
    read: list[tuple[str, str]]  # (mover port, array port)
    write: list[tuple[str, str, str]]  # (mover port, device port, device name)

    def first_route(self) -> Route:
        (m_in, a_port), (m_out, d_port, device) = self.read[0], self.write[0]
        return Route(array_port=a_port, mover_in=m_in, mover=self.mover, mover_out=m_out,
                     device_port=d_port, device=device)
