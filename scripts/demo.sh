#!/usr/bin/env bash
# Brings up a gateway and a facility client on this host with their default ports,
# stores a sample image (patient "Demo^Jane") through the client with DCMTK's
# storescu, waits until the gateway has it, runs `pacs-client query` as a clinician
# (which prints the real name again, from the gateway's copy, which only ever held a
# pseudonym: the location column says "gateway" or "both"), and
# stops both. Needs DCMTK (dump2dcm, storescu). Work files go to $DEMO_DIR (default: a
# new temporary directory), which is kept so the logs can be read.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
export TCP_NODELAY=1
for tool in dump2dcm storescu; do
  command -v "$tool" >/dev/null || { echo "demo: $tool is missing: apt-get install dcmtk" >&2; exit 1; }
done

echo "demo: building pacs-gateway and pacs-client (the first build takes minutes) ..."
cargo build -p gateway --bin pacs-gateway -p client --bin pacs-client
target="${CARGO_TARGET_DIR:-$root/target}/debug"
G="$target/pacs-gateway"
C="$target/pacs-client"

dir="${DEMO_DIR:-$(mktemp -d -t pacs-demo.XXXXXX)}"
mkdir -p "$dir"
cd "$dir"
echo "demo: working in $dir"
pids=()
stop_all() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop_all EXIT

wait_for() { # FILE TEXT SECONDS
  for _ in $(seq 1 $(($3 * 10))); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "demo: no \"$2\" in $1 after $3 s:" >&2
  cat "$1" >&2
  return 1
}

# The gateway: a facility, its certificate, a clinician.
"$G" --data-dir gateway-data facility add st-mary
"$G" --data-dir gateway-data facility issue-cert st-mary --out st-mary-cert
echo "demo-password-123" | "$G" --data-dir gateway-data user add st-mary dr.house --role clinician
"$G" --data-dir gateway-data serve >gateway.log 2>&1 &
pids+=($!)
wait_for gateway.log "DICOM TLS listening" 60

# The facility client, with the README's minimal config.
cat >client.toml <<'TOML'
data_dir = "./client-data"
facility = "st-mary"

[[edge.modalities]]
ae_title = "CT_ROOM_1"

[gateway]
address = "localhost:2762"
server_name = "localhost"
cert = "./st-mary-cert/facility.crt"
key = "./st-mary-cert/facility.key"
ca = "./st-mary-cert/ca.crt"
TOML
"$C" --config client.toml init 2>/dev/null
"$C" --config client.toml serve >client.log 2>&1 &
pids+=($!)
wait_for client.log "edge SCP listening" 60

# A small secondary-capture image for patient Demo^Jane.
cat >sample.dump <<'DUMP'
(0008,0016) UI =SecondaryCaptureImageStorage
(0008,0018) UI [1.2.826.0.1.3680043.99.7.1.1.1]
(0008,0020) DA [20261107]
(0008,0060) CS [OT]
(0008,1030) LO [Demo study]
(0010,0010) PN [Demo^Jane]
(0010,0020) LO [DEMO-0001]
(0010,0030) DA [19700101]
(0020,000d) UI [1.2.826.0.1.3680043.99.7.1]
(0020,000e) UI [1.2.826.0.1.3680043.99.7.1.1]
(0020,0013) IS [1]
(0028,0002) US 1
(0028,0004) CS [MONOCHROME2]
(0028,0010) US 2
(0028,0011) US 2
(0028,0100) US 8
(0028,0101) US 8
(0028,0102) US 7
(0028,0103) US 0
(7fe0,0010) OB 00\40\80\ff
DUMP
dump2dcm -g sample.dump sample.dcm
storescu -aet CT_ROOM_1 -aec PACS_CLIENT localhost 11112 sample.dcm
echo "demo: stored sample.dcm through the client; waiting for the gateway ..."

export PACS_PASSWORD="demo-password-123"
for _ in $(seq 1 120); do
  if out="$("$C" --config client.toml query --user dr.house --name "Demo^Jane" 2>/dev/null)" &&
    grep "Demo^Jane" <<<"$out" | grep -Eq " (gateway|both) "; then
    echo "demo: pacs-client query --user dr.house --name Demo^Jane"
    echo "$out"
    echo "demo: done (logs in $dir)"
    exit 0
  fi
  sleep 0.5
done
echo "demo: the query never showed the sample; logs:" >&2
tail -n 20 gateway.log client.log >&2
exit 1
