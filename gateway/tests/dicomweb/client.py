"""Drives the gateway's DICOMweb with the `dicomweb-client` package (an independent
DICOMweb stack) and prints what it saw as one JSON object for gateway/tests/dicomweb_client.rs.

usage: client.py BASE_URL CA_FILE USER PASSWORD STOW_FILE
"""
import hashlib
import json
import sys

import pydicom
import requests
from dicomweb_client.api import DICOMwebClient
from dicomweb_client.session_utils import create_session_from_user_pass


def main():
    base, ca, user, password, stow_file = sys.argv[1:6]
    session = create_session_from_user_pass(user, password)
    # The gateway's own CA only: no REQUESTS_CA_BUNDLE or proxy from the environment.
    session.trust_env = False
    session.verify = ca
    client = DICOMwebClient(url=base, session=session)
    out = {}

    studies = client.search_for_studies()
    out["studies"] = sorted(s["0020000D"]["Value"][0] for s in studies)
    out["study_instances"] = {
        s["0020000D"]["Value"][0]: s["00201208"]["Value"][0] for s in studies
    }
    first = out["studies"][0]
    series = client.search_for_series(study_instance_uid=first)
    out["series_of_first"] = sorted(s["0020000E"]["Value"][0] for s in series)
    instances = client.search_for_instances(study_instance_uid=first)
    out["instances_of_first"] = sorted(i["00080018"]["Value"][0] for i in instances)
    filtered = client.search_for_studies(search_filters={"PatientID": "PSEUDO0000"})
    out["filtered"] = [s["0020000D"]["Value"][0] for s in filtered]

    # WADO-RS: every instance of the first study, parsed by pydicom.
    retrieved = {}
    for ds in client.retrieve_study(first):
        retrieved[ds.SOPInstanceUID] = hashlib.sha256(ds.PixelData).hexdigest()
    out["retrieved"] = retrieved
    inst = instances[0]
    sop = inst["00080018"]["Value"][0]
    ser = inst["0020000E"]["Value"][0]
    ds = client.retrieve_instance(first, ser, sop)
    out["instance_uid"] = ds.SOPInstanceUID
    metadata = client.retrieve_instance_metadata(first, ser, sop)
    out["metadata_uid"] = metadata["00080018"]["Value"][0]
    out["metadata_pixel_uri"] = "BulkDataURI" in metadata.get("7FE00010", {})
    frames = client.retrieve_instance_frames(first, ser, sop, frame_numbers=[1])
    out["frame_sha256"] = hashlib.sha256(frames[0]).hexdigest()

    # STOW-RS.
    stored = client.store_instances([pydicom.dcmread(stow_file)])
    out["stow_referenced"] = len(getattr(stored, "ReferencedSOPSequence", []))
    out["stow_failed"] = len(getattr(stored, "FailedSOPSequence", []))

    # Wrong password.
    bad = create_session_from_user_pass(user, "wrong password")
    bad.trust_env = False
    bad.verify = ca
    try:
        DICOMwebClient(url=base, session=bad).search_for_studies()
        out["wrong_password"] = "accepted"
    except requests.exceptions.HTTPError as e:
        out["wrong_password"] = e.response.status_code
    print(json.dumps(out))


if __name__ == "__main__":
    main()
