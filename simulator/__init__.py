"""Time: a simpy model of the SAN that runs the orchestrator with no hardware."""
