"""Drives the facility client's DICOMweb proxy with the `dicomweb-client` package (an
independent DICOMweb stack) and prints what it saw as one JSON object for
client/tests/web_proxy.rs.

usage: client.py BASE_URL USER PASSWORD NAME OTHER_USER OTHER_PASSWORD
"""
import json
import sys

import requests
from dicomweb_client.api import DICOMwebClient
from dicomweb_client.session_utils import create_session_from_user_pass


def client(base, user, password):
    session = create_session_from_user_pass(user, password)
    # Plain HTTP on loopback: no proxy or CA bundle from the environment.
    session.trust_env = False
    return DICOMwebClient(url=base, session=session)


def value(item, tag):
    return item.get(tag, {}).get("Value", [None])[0]


def main():
    base, user, password, name, other_user, other_password = sys.argv[1:7]
    c = client(base, user, password)
    out = {}

    studies = c.search_for_studies()
    out["studies"] = sorted(
        [
            value(s, "00100010")["Alphabetic"],
            value(s, "00100020"),
            value(s, "0020000D"),
            value(s, "00201208"),
            value(s, "00081190"),
        ]
        for s in studies
    )
    by_name = c.search_for_studies(search_filters={"PatientName": name})
    out["by_name"] = sorted(value(s, "0020000D") for s in by_name)
    wildcard = c.search_for_studies(search_filters={"PatientName": name[:7] + "*"})
    out["by_wildcard"] = sorted(value(s, "0020000D") for s in wildcard)
    paged = c.search_for_studies(limit=1, offset=1)
    out["paged"] = len(paged)

    first = sorted(s for _, _, s, _, _ in out["studies"])[0]
    series = c.search_for_series(study_instance_uid=first)
    out["series"] = sorted(value(s, "0020000E") for s in series)
    instances = c.search_for_instances(study_instance_uid=first)
    out["instances"] = sorted(value(i, "00080018") for i in instances)

    inst = sorted(instances, key=lambda i: value(i, "00080018"))[0]
    ds = c.retrieve_instance(
        first, value(inst, "0020000E"), value(inst, "00080018")
    )
    out["instance"] = [str(ds.PatientName), ds.PatientID, ds.StudyInstanceUID,
                       ds.SOPInstanceUID, "EncryptedAttributesSequence" in ds]
    out["study_retrieved"] = sorted(d.SOPInstanceUID for d in c.retrieve_study(first))
    metadata = c.retrieve_study_metadata(first)
    out["metadata"] = sorted(
        [value(m, "00100010")["Alphabetic"], value(m, "00080018"), "7FE00010" in m]
        for m in metadata
    )

    try:
        client(base, user, "wrong password").search_for_studies()
        out["wrong_password"] = "accepted"
    except requests.exceptions.HTTPError as e:
        out["wrong_password"] = e.response.status_code
        out["wrong_password_challenge"] = e.response.headers.get("WWW-Authenticate", "")
    try:
        other = client(base, other_user, other_password).search_for_studies()
        out["other_facility"] = [value(s, "0020000D") for s in other]
    except requests.exceptions.HTTPError as e:
        out["other_facility"] = e.response.status_code
    print(json.dumps(out))


if __name__ == "__main__":
    main()
