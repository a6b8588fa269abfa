#!/bin/sh
# Refresh the caniemail.com data set that `newsletter check` reads for
# email-client CSS/HTML support. The npm package `caniemail` carries it as
# data/caniemail.json; `npm pack` downloads the published tarball without
# installing anything. Usage: scripts/refresh_caniemail.sh [VERSION]
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/newsletter/data"
spec="caniemail${1:+@$1}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cd "$work"
tarball=$(npm pack --silent "$spec" | tail -n 1)
tar -xzf "$tarball"
python3 - package/data/caniemail.json <<'PY'
import json, sys
data = json.load(open(sys.argv[1], encoding="utf-8"))
assert isinstance(data.get("data"), list) and data["data"], "no features in caniemail.json"
assert "nicenames" in data, "caniemail.json has no nicenames"
PY
mkdir -p "$dest"
cp package/data/caniemail.json "$dest/caniemail.json"
cp package/LICENSE "$dest/caniemail.LICENSE"
python3 - "$dest/caniemail.json" "$tarball" <<'PY'
import json, sys
data = json.load(open(sys.argv[1], encoding="utf-8"))
print(f"{sys.argv[2]}: {len(data['data'])} features, last updated {data.get('last_update_date')}")
PY
