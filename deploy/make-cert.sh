#!/usr/bin/env bash
# A self-signed certificate for trying the compose stack on one machine (deploy/certs/).
# In production use the clinic group's certificate (or an ACME client) instead.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p certs secrets
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=${1:-localhost}" \
    -keyout certs/candor.key -out certs/candor.crt
chmod 600 certs/candor.key
echo "wrote deploy/certs/candor.crt and candor.key (self-signed, 30 days)"
