"""Merge a TSM administrator's server definitions into a fabric description.

Understood: DEFINE and UPDATE of DATAMOVER (TYPE=SCSI), DISK, PATH, LIBRARY,
DRIVE, DEVCLASS and STGPOOL, DEFINE VOLUME (a disk-pool volume: its LUN by
DESIGNATOR=, the backup server's spelling, or a volume name that is a LUN
reference such as ``ARR1:5``), plus SET SERVERFREE (accepted, no effect on
paths). The fabric file supplies what TSM does not know: cabling, zoning,
masking, hosts and volumes. Every unknown command or parameter, and every bad
value, is reported with its line; nothing is merged unless the whole macro is
clean.
"""
from __future__ import annotations

import logging
from pathlib import Path

from pydantic import ValidationError

from topology.errors import TopologyError, validation_line
from topology.model import (DataFormat, DataMover, DevClass, Drive, HbaPort, Library, StoragePool, Topology,
                            TsmDisk, TsmPath)
from topology.references import check_references
from topology.tsm_syntax import Statement, logical_lines, match_keyword, split_params, tokenize
from topology.wwn import parse_naa, parse_wwpn

log = logging.getLogger(__name__)

VERBS = ["DEFine", "UPDate", "SET"]
NOUNS = ["DATAMover", "DISK", "PATH", "LIBRary", "DRive", "DEVclass", "STGpool"]
#: A macro also names disk-pool volumes; NOUNS alone are what `serverfree server` stores as SAN definitions
#: (its own DEFINE VOLUME makes pool volumes, orchestrator/server/pools.py).
MACRO_NOUNS = NOUNS + ["VOLume"]

#: Parameters accepted per object; those that describe no SAN path are accepted and change no verdict.
PARAMS = {
    "DATAMOVER": ["Type", "WWN", "SERial", "DATAFormat", "ONLine", "COPYThreads", "HLAddress", "LLAddress",
                  "USERid", "PASsword"],
    "DISK": ["WWN", "SERial", "ONLine"],
    "PATH": ["SRCType", "DESTType", "NODE", "LUN", "INIT", "ONLine", "LIBRary", "DEVIce", "DIRectory",
             "AUTODetect", "DESCription"],
    "LIBRARY": ["LIBType", "SHAREd", "SERial", "AUTOLabel", "RESETDrives", "WWN"],
    "DRIVE": ["ONLine", "ELEMent", "CLEANFREQuency", "WWN", "SERial", "ACSDRVID"],
    "DEVCLASS": ["DEVType", "LIBRary", "FORMAT", "ESTCAPacity", "MOUNTRetention", "MOUNTWait", "MOUNTLimit",
                 "PREFIX", "DIRectory", "MAXCAPacity"],
    "STGPOOL": ["DATAFormat", "DESCription", "ACCess", "MAXSIze", "NEXTstgpool", "HIghmig", "LOwmig",
                "MAXSCRatch", "COLlocate", "REUsedelay", "POoltype", "MIGPRocess", "CAChe", "CRCData"],
    "SERVERFREE": ["STATus", "BATCHSize"],
    # TSM's DEFINE VOLUME parameters, plus CAPACITY= and DESIGNATOR= as `serverfree server` spells them
    # (and DRIVE=: the drive a tape pool's cartridge sits in)
    "VOLUME": ["ACCess", "LOcation", "FORMATSIZE", "NUMberofvolumes", "WAIT", "CAPacity", "DESIGNATOR", "DRIVE"],
}
POSITIONAL = {"DATAMOVER": 1, "DISK": 2, "PATH": 2, "LIBRARY": 1, "DRIVE": 2, "DEVCLASS": 1, "STGPOOL": 2,
              "VOLUME": 2}
#: UPDATE STGPOOL names only the pool; DEFINE STGPOOL also names the device class.
POSITIONAL_UPDATE = {"STGPOOL": 1}


class _Problems:
    def __init__(self, file: str) -> None:
        self.file = file
        self.items: list[tuple[int, str, str | None]] = []

    def add(self, line: int, message: str, value: str | None = None) -> None:
        self.items.append((line, message, value))

    def raise_if_any(self) -> None:
        if self.items:
            line, message, value = self.items[0]
            raise TopologyError(message, file=self.file, location=f"line {line}", value=value,
                                problems=[f"line {n}: {m}" for n, m, _ in self.items])


def parse_macro(text: str, *, file: str = "macro") -> list[Statement]:
    """Statements with full upper-case keywords; TopologyError listing every problem with its line."""
    problems = _Problems(file)
    out: list[Statement] = []
    for line, stmt_text in logical_lines(text):
        tokens = tokenize(stmt_text, file=file, line=line)
        if not tokens:  # a continuation that held only a comment
            continue
        verb = match_keyword(tokens[0], VERBS)
        if verb is None:
            problems.add(line, f"unknown command {tokens[0]!r}", tokens[0])
            continue
        if len(tokens) < 2:
            problems.add(line, f"{verb} needs an object such as DATAMOVER or PATH", stmt_text)
            continue
        noun = match_keyword(tokens[1], ["SERVERFree"] if verb == "SET" else MACRO_NOUNS)
        if noun is None:
            problems.add(line, f"unknown command {verb} {tokens[1].upper()}", tokens[1])
            continue
        positional, pairs = split_params(tokens[2:])
        params: dict[str, str] = {}
        for key, value in pairs:
            full = match_keyword(key, PARAMS[noun])
            if full is None:
                problems.add(line, f"unknown parameter {key.upper()}= for {verb} {noun}", key)
            elif full in params:
                problems.add(line, f"parameter {full}= given twice", key)
            else:
                params[full] = value
        want = POSITIONAL_UPDATE.get(noun, POSITIONAL.get(noun, 0)) if verb == "UPDATE" else POSITIONAL.get(noun, 0)
        if verb != "SET" and len(positional) != want:
            problems.add(line, f"{verb} {noun} takes {want} name(s) before its parameters, got "
                               f"{len(positional)}: {' '.join(positional) or '(none)'}", stmt_text)
            continue
        out.append(Statement(line, verb, noun, positional, params, stmt_text))
    problems.raise_if_any()
    return out


#: TSM device types a DEFINE DEVCLASS may name (DISK is predefined and never defined).
DEVTYPES = frozenset({"FILE", "LTO", "3590", "3592", "DLT", "SDLT", "ECARTRIDGE", "4MM", "8MM", "QIC",
                      "GENERICTAPE", "DTF", "OPTICAL", "WORM", "NAS", "VOLSAFE", "REMOVABLEFILE", "SERVER"})


def _one_line(exc: BaseException) -> str:
    """A pydantic ValidationError as 'field: message' (no URL, one line); other errors as they are."""
    if isinstance(exc, ValidationError):
        return validation_line(exc.errors()[0])
    return " ".join(str(exc).replace("Value error, ", "").split())


def _yes_no(value: str) -> bool:
    v = match_keyword(value, ["Yes", "No"])
    if v is None:
        raise ValueError(f"expected YES or NO, got {value!r}")
    return v == "YES"


def _int(value: str, what: str) -> int:
    if not value.isdigit():
        raise ValueError(f"{what} must be a whole number, got {value!r}")
    return int(value)


class _Merger:
    def __init__(self, topo: Topology, file: str) -> None:
        self.topo = topo
        self.problems = _Problems(file)

    def apply(self, st: Statement) -> None:
        try:
            getattr(self, f"_{st.noun.lower()}")(st, st.verb == "UPDATE")
        except (ValueError, LookupError) as exc:
            self.problems.add(st.line, f"{st.verb} {st.noun}: {_one_line(exc)}")

    def _find(self, items, name: str, what: str, update: bool, create):
        for item in items:
            if item.name.upper() == name.upper():
                return item
        if update:
            raise LookupError(f"no {what} named {name} to update")
        item = create()
        items.append(item)
        return item

    def _serverfree(self, st: Statement, update: bool) -> None:
        log.info("line %d: SET SERVERFREE accepted (no effect on path verdicts)", st.line)

    def _datamover(self, st: Statement, update: bool) -> None:
        p, (name,) = st.params, st.positional
        if "TYPE" in p and match_keyword(p["TYPE"], ["SCSI"]) is None:
            raise ValueError(f"TYPE={p['TYPE'].upper()} is not supported: server-free needs TYPE=SCSI")
        for nas in ("HLADDRESS", "LLADDRESS", "USERID", "PASSWORD"):
            if nas in p:
                raise ValueError(f"{nas}= belongs to NAS data movers; server-free needs TYPE=SCSI")
        existing = any(m.name.upper() == name.upper() for m in self.topo.datamovers)
        if not existing and not update and "WWN" not in p:
            raise ValueError(f"data mover {name} needs WWN= (the port it copies through)")
        mover = self._find(self.topo.datamovers, name, "data mover", update,
                           lambda: DataMover(name=name, ports=[HbaPort(wwpn=p["WWN"])]))
        if "WWN" in p:
            wwpn = parse_wwpn(p["WWN"])
            if wwpn not in {x.wwpn for x in mover.ports}:
                mover.ports = [HbaPort(wwpn=wwpn)]
        if "SERIAL" in p:
            mover.serial = p["SERIAL"]
        if "ONLINE" in p:
            mover.online = _yes_no(p["ONLINE"])
        if "COPYTHREADS" in p:
            mover.concurrency = _int(p["COPYTHREADS"], "COPYTHREADS")
        if "DATAFORMAT" in p:
            fmt = match_keyword(p["DATAFORMAT"], ["NONBlock"])
            if fmt is None:
                raise ValueError(f"DATAFORMAT={p['DATAFORMAT']}: a SCSI data mover copies in NONBLOCK format")
            mover.dataformat = DataFormat.NONBLOCK

    def _disk(self, st: Statement, update: bool) -> None:
        node, name = st.positional
        p = st.params
        disk = next((d for d in self.topo.tsm_disks if d.node.upper() == node.upper()
                     and d.name.upper() == name.upper()), None)
        if disk is None:
            if update:
                raise LookupError(f"no disk {name} of node {node} to update")
            disk = TsmDisk(node=node, name=name)
            self.topo.tsm_disks.append(disk)
        if "WWN" in p:
            disk.naa = parse_naa(p["WWN"])
        if "SERIAL" in p:
            disk.serial = p["SERIAL"]
        if "ONLINE" in p:
            disk.online = _yes_no(p["ONLINE"])

    def _path(self, st: Statement, update: bool) -> None:
        source, dest = st.positional
        p = st.params
        srctype = match_keyword(p.get("SRCTYPE", ""), ["DATAMover", "SERVer"])
        desttype = match_keyword(p.get("DESTTYPE", ""), ["DIsk", "DRive", "LIBRary"])
        if srctype is None:
            raise ValueError(f"SRCTYPE={p.get('SRCTYPE', '')!s} must be DATAMOVER or SERVER")
        if desttype is None:
            raise ValueError(f"DESTTYPE={p.get('DESTTYPE', '')!s} must be DISK, DRIVE or LIBRARY")
        if desttype == "DISK" and "NODE" not in p and not update:
            raise ValueError("a path to a disk needs NODE=")
        if desttype == "DRIVE" and "LIBRARY" not in p and not update:
            raise ValueError("a path to a drive needs LIBRARY=")
        if srctype == "DATAMOVER" and not any(m.name.upper() == source.upper() for m in self.topo.datamovers):
            raise LookupError(f"no data mover {source} is defined (DEFINE DATAMOVER {source} first)")
        if desttype == "DRIVE" and "LIBRARY" in p and \
                not any(x.name.upper() == p["LIBRARY"].upper() for x in self.topo.libraries):
            raise LookupError(f"LIBRARY={p['LIBRARY']}: no such library is defined")
        path = next((x for x in self.topo.tsm_paths if x.source.upper() == source.upper()
                     and x.destination.upper() == dest.upper() and x.desttype == desttype), None)
        if path is None:
            if update:
                raise LookupError(f"no path from {source} to {dest} to update")
            path = TsmPath(source=source, destination=dest, srctype=srctype, desttype=desttype)
            self.topo.tsm_paths.append(path)
        if "NODE" in p:
            path.node = p["NODE"]
        if "LIBRARY" in p:
            path.library = p["LIBRARY"]
        if "LUN" in p:
            path.lun = _int(p["LUN"], "LUN")
        if "DEVICE" in p:
            path.device = p["DEVICE"]
        if "ONLINE" in p:
            path.online = _yes_no(p["ONLINE"])
        if desttype == "DISK" and path.node:
            disk = next((d for d in self.topo.tsm_disks if d.name.upper() == dest.upper()), None)
            if disk is not None and disk.node.upper() != path.node.upper():
                raise ValueError(f"disk {dest} belongs to node {disk.node}, not NODE={path.node}")

    def _library(self, st: Statement, update: bool) -> None:
        (name,) = st.positional
        lib = self._find(self.topo.libraries, name, "library", update, lambda: Library(name=name))
        if "LIBTYPE" in st.params:
            lib.libtype = st.params["LIBTYPE"].upper()

    def _drive(self, st: Statement, update: bool) -> None:
        libname, name = st.positional
        p = st.params
        lib = next((x for x in self.topo.libraries if x.name.upper() == libname.upper()), None)
        if lib is None:
            raise LookupError(f"unknown library {libname}")
        drive = next((d for d in lib.drives if d.name.upper() == name.upper()), None)
        if drive is None:
            if update:
                raise LookupError(f"no drive {name} in library {libname} to update")
            if "WWN" not in p:
                raise ValueError(f"drive {name} needs WWN= (its port on the fabric)")
            drive = Drive(name=name, wwpn=p["WWN"])
            lib.drives.append(drive)
        if "WWN" in p:
            drive.wwpn = parse_wwpn(p["WWN"])
        if "SERIAL" in p:
            drive.serial = p["SERIAL"]
        if "ONLINE" in p:
            drive.online = _yes_no(p["ONLINE"])

    def _devclass(self, st: Statement, update: bool) -> None:
        (name,) = st.positional
        p = st.params
        if not update and "DEVTYPE" not in p:
            raise ValueError(f"device class {name} needs DEVTYPE=")
        if "DEVTYPE" in p and p["DEVTYPE"].upper() not in DEVTYPES:
            raise ValueError(f"DEVTYPE={p['DEVTYPE']} is not a TSM device type ({', '.join(sorted(DEVTYPES))})")
        if "LIBRARY" in p and not any(x.name.upper() == p["LIBRARY"].upper() for x in self.topo.libraries):
            raise LookupError(f"LIBRARY={p['LIBRARY']}: no such library is defined")
        dc = self._find(self.topo.devclasses, name, "device class", update,
                        lambda: DevClass(name=name, devtype=p["DEVTYPE"], library=p.get("LIBRARY")))
        if "DEVTYPE" in p:
            dc.devtype = p["DEVTYPE"].upper()
        if "LIBRARY" in p:
            dc.library = p["LIBRARY"]

    def _stgpool(self, st: Statement, update: bool) -> None:
        name = st.positional[0]
        devclass = st.positional[1] if len(st.positional) > 1 else None
        p = st.params
        fmt = None
        if devclass and not update and devclass.upper() != "DISK" and \
                not any(d.name.upper() == devclass.upper() for d in self.topo.devclasses):
            raise LookupError(f"device class {devclass} is not defined (DEFINE DEVCLASS {devclass} first)")
        for key in ("MAXSCRATCH", "MAXSIZE"):
            if key in p and not p[key].isdigit() and p[key].upper() != "NOLIMIT":
                raise ValueError(f"{key}={p[key]} must be a whole number")
        if "DATAFORMAT" in p:
            if update:
                raise ValueError("DATAFORMAT cannot be changed with UPDATE STGPOOL (define a new pool)")
            word = match_keyword(p["DATAFORMAT"], ["NATive", "NONblock"])
            if word is None:
                raise ValueError(f"DATAFORMAT={p['DATAFORMAT']} is not NATIVE or NONBLOCK")
            fmt = DataFormat(word)
        pool = self._find(self.topo.stgpools, name, "storage pool", update,
                          lambda: StoragePool(name=name, devclass=devclass or "",
                                              dataformat=fmt or DataFormat.NATIVE))
        if devclass and not update:
            pool.devclass = devclass
            pool.dataformat = fmt or DataFormat.NATIVE


    def _volume(self, st: Statement, update: bool) -> None:
        """DEFINE VOLUME pool volume: the volume's LUN joins the disk pool's ``disk_luns``."""
        if update:
            raise ValueError("UPDATE VOLUME changes nothing on the SAN; define the volume instead")
        poolname, volname = st.positional
        pool = next((x for x in self.topo.stgpools if x.name.upper() == poolname.upper()), None)
        if pool is None:
            raise LookupError(f"storage pool {poolname} is not defined (DEFINE STGPOOL {poolname} DISK first)")
        dc = next((d for d in self.topo.devclasses if d.name.upper() == pool.devclass.upper()), None)
        devtype = "DISK" if pool.devclass.upper() == "DISK" else (dc.devtype.upper() if dc else "")
        if devtype not in ("DISK", "FILE") and "DRIVE" in st.params:
            # a cartridge in one of the tape pool's drives: nothing on the SAN changes, the drive must exist
            lib = next((x for x in self.topo.libraries if dc and dc.library and x.name.upper() == dc.library.upper()),
                       None)
            if lib is None or not any(d.name.upper() == st.params["DRIVE"].upper() for d in lib.drives):
                raise LookupError(f"DRIVE={st.params['DRIVE']}: not a drive of the library of tape pool {pool.name}")
            return
        if devtype not in ("DISK", "FILE"):
            raise ValueError(f"storage pool {pool.name} is a {devtype or pool.devclass} pool: DEFINE VOLUME "
                             "here names disk-pool volumes (device class DISK or FILE), or a cartridge with DRIVE=")
        if "DRIVE" in st.params:
            raise ValueError(f"DRIVE={st.params['DRIVE']}: storage pool {pool.name} is a disk pool; DRIVE= names "
                             "the drive a tape pool's cartridge sits in")
        if "DESIGNATOR" in st.params:
            ref = parse_naa(st.params["DESIGNATOR"])
        elif ":" in volname or volname.lower().startswith("naa."):
            ref = volname
        else:
            raise ValueError(f"volume {volname}: give DESIGNATOR= (its LUN's NAA designator as the data mover "
                             "sees it, VPD page 83h) or name it by its LUN, e.g. ARR1:5")
        if ref in pool.disk_luns:
            raise ValueError(f"volume {volname}: LUN {ref} is already a volume of pool {pool.name}")
        pool.disk_luns.append(ref)


def merge_macros(topo: Topology, macros: list[str | Path], *, fabric_file: str | None = None) -> Topology:
    """A new Topology: ``topo`` with each macro's definitions applied in order, then fully checked.

    ``topo`` may be unchecked (``load_topology(..., check=False)``): the fabric
    file may refer to pools and movers only the macro defines.
    """
    merged = topo.model_copy(deep=True)
    for macro in macros:
        path = Path(macro)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise TopologyError(f"not UTF-8 text at byte {exc.start}", file=str(path)) from None
        merged = _apply(merged, text, str(path))
    return _checked(merged, topo, fabric_file or " + ".join(str(m) for m in macros))


def merge_macro(topo: Topology, macro: str | Path) -> Topology:
    """:func:`merge_macros` for a single macro file."""
    return merge_macros(topo, [macro])


def merge_macro_text(topo: Topology, text: str, *, file: str = "macro") -> Topology:
    """:func:`merge_macros` for macro text held in memory."""
    return _checked(_apply(topo.model_copy(deep=True), text, file), topo, file)


def apply_macro_text(topo: Topology, text: str, *, file: str = "macro") -> Topology:
    """Apply macro text to ``topo`` in place without the final cross-check (the backup server's
    definition path: each DEFINE/UPDATE is judged against what was defined before it)."""
    return _apply(topo, text, file)


def _apply(topo: Topology, text: str, file: str) -> Topology:
    statements = parse_macro(text, file=file)
    m = _Merger(topo, file)
    for st in statements:
        m.apply(st)
    m.problems.raise_if_any()
    return topo


def _checked(merged: Topology, original: Topology, file: str) -> Topology:
    data = merged.model_dump(mode="json")
    try:
        result = Topology.model_validate(data)
    except ValueError as exc:
        raise TopologyError(f"after merging: {exc}", file=file) from None
    try:
        warnings = check_references(result, data=data, file=file)
    except TopologyError as exc:
        raise TopologyError(f"after merging: {exc.reason}", file=file, location=exc.location,
                            value=exc.value) from None
    result._warnings = warnings
    return result
