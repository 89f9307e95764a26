#!/usr/bin/env bash
# System packages the tests use, from Debian: a headless browser (the HTML report is checked in
# it), pdftoppm (the PDF report's pages), kubectl and openssl (the control-plane tests: applying
# manifests, the API server's service-account key). Installs only what is missing; needs root or sudo.
set -euo pipefail
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v pdftoppm >/dev/null || missing+=(poppler-utils)
command -v kubectl >/dev/null || missing+=(kubernetes-client)
command -v openssl >/dev/null || missing+=(openssl)
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "installed: ${missing[*]}" >&2
