#!/usr/bin/env python3
"""Query/retrieve against the gateway with pynetdicom, an independent DICOM stack.

Usage:
  qr.py HOST PORT CALLED_AE CALLING_AE USER PASSWORD find MODEL LEVEL KEY=VALUE...
  qr.py HOST PORT CALLED_AE CALLING_AE USER PASSWORD get STUDY_UID OUTDIR
  qr.py HOST PORT CALLED_AE CALLING_AE USER PASSWORD find-nocreds MODEL LEVEL KEY=VALUE...

MODEL is `patient` or `study`. An empty VALUE asks for that return key.
Credentials go in User Identity Negotiation (type 2: user name and passcode), except
for `find-nocreds`, which associates without any.

Output (stdout):
  find:  one JSON object per match with the requested keys (multiple values joined
         with a backslash), then `STATUS 0xNNNN`.
  get:   `STATUS 0xNNNN completed=N failed=N warning=N received=N`; every received
         instance is written to OUTDIR/<SOPInstanceUID>.dcm with its data set bytes
         exactly as they came off the wire.
  A rejected association prints `REJECTED` (exit code 3); an aborted one `ABORTED`
  (exit code 4).
"""

import json
import os
import sys

from pydicom.dataset import Dataset
from pydicom.filewriter import write_file_meta_info
from pynetdicom import AE, build_role, evt
from pynetdicom.pdu_primitives import UserIdentityNegotiation
from pynetdicom.sop_class import (
    ComputedRadiographyImageStorage,
    CTImageStorage,
    MRImageStorage,
    PatientRootQueryRetrieveInformationModelFind,
    SecondaryCaptureImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    UltrasoundImageStorage,
)

STORAGE = [
    CTImageStorage,
    MRImageStorage,
    ComputedRadiographyImageStorage,
    SecondaryCaptureImageStorage,
    UltrasoundImageStorage,
]
MODELS = {
    "patient": PatientRootQueryRetrieveInformationModelFind,
    "study": StudyRootQueryRetrieveInformationModelFind,
}


def user_identity(user, password):
    item = UserIdentityNegotiation()
    item.user_identity_type = 2
    item.primary_field = user.encode()
    item.secondary_field = password.encode()
    return item


def associate(ae, host, port, called, ext_neg, roles=(), handlers=()):
    assoc = ae.associate(
        host,
        port,
        ae_title=called,
        ext_neg=list(ext_neg) + list(roles) or None,
        evt_handlers=list(handlers) or None,
    )
    if assoc.is_established:
        return assoc
    if assoc.is_rejected:
        print("REJECTED", flush=True)
        sys.exit(3)
    print("ABORTED", flush=True)
    sys.exit(4)


def text(elem):
    value = elem.value
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value)


def find(ae, host, port, called, ext_neg, model, level, keys):
    ae.add_requested_context(MODELS[model])
    query = Dataset()
    query.QueryRetrieveLevel = level
    wanted = []
    for pair in keys:
        keyword, _, value = pair.partition("=")
        setattr(query, keyword, value)
        wanted.append(keyword)
    assoc = associate(ae, host, port, called, ext_neg)
    status = None
    for st, identifier in assoc.send_c_find(query, MODELS[model]):
        if st is None:
            break
        status = st.Status
        if status in (0xFF00, 0xFF01) and identifier is not None:
            row = {k: text(identifier[k]) if k in identifier else None for k in wanted}
            print(json.dumps(row, sort_keys=True), flush=True)
    assoc.release()
    print("STATUS " + ("NONE" if status is None else "0x%04X" % status), flush=True)


def get(ae, host, port, called, ext_neg, study_uid, outdir):
    os.makedirs(outdir, exist_ok=True)
    received = []

    def on_store(event):
        sop_uid = event.request.AffectedSOPInstanceUID
        path = os.path.join(outdir, sop_uid + ".dcm")
        with open(path, "wb") as f:
            f.write(b"\x00" * 128 + b"DICM")
            write_file_meta_info(f, event.file_meta, enforce_standard=True)
            f.write(event.request.DataSet.getvalue())
        received.append(path)
        return 0x0000

    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    for cls in STORAGE:
        ae.add_requested_context(cls)
    roles = [build_role(cls, scp_role=True) for cls in STORAGE]
    handlers = [(evt.EVT_C_STORE, on_store)]
    assoc = associate(ae, host, port, called, ext_neg, roles, handlers)
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study_uid
    last = None
    for st, _identifier in assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet):
        if st is None:
            break
        last = st
    assoc.release()
    if last is None:
        print("STATUS NONE received=%d" % len(received), flush=True)
        return
    counts = {
        k: int(getattr(last, "NumberOf%sSuboperations" % k, 0) or 0)
        for k in ("Completed", "Failed", "Warning")
    }
    print(
        "STATUS 0x%04X completed=%d failed=%d warning=%d received=%d"
        % (last.Status, counts["Completed"], counts["Failed"], counts["Warning"], len(received)),
        flush=True,
    )


def main(argv):
    if len(argv) < 8:
        print(__doc__, file=sys.stderr)
        return 2
    host, port, called, calling, user, password, command = argv[1:8]
    rest = argv[8:]
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    creds = [user_identity(user, password)]
    if command == "find":
        find(ae, host, int(port), called, creds, rest[0], rest[1], rest[2:])
    elif command == "find-nocreds":
        find(ae, host, int(port), called, [], rest[0], rest[1], rest[2:])
    elif command == "get":
        get(ae, host, int(port), called, creds, rest[0], rest[1])
    else:
        print("unknown command " + command, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
