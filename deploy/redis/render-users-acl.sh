#!/bin/sh
# Prints deploy/redis/users.acl with each {{SRI_<USER>_REDIS_PASSWORD_SHA256}} replaced by the SHA-256 of the
# password in the environment variable SRI_<USER>_REDIS_PASSWORD, for redis-server --aclfile (docs/security.md
# "Redis ACL"). The passwords themselves never enter the file. Usage:
#   SRI_ADMIN_REDIS_PASSWORD=… SRI_API_REDIS_PASSWORD=… SRI_WORKER_REDIS_PASSWORD=… SRI_KEDA_REDIS_PASSWORD=… \
#   SRI_PRODUCER_REDIS_PASSWORD=… sh deploy/redis/render-users-acl.sh > /data/users.acl
set -eu
here=$(dirname "$0")
sha256() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
for user in ADMIN API WORKER KEDA PRODUCER; do
  eval "pw=\${SRI_${user}_REDIS_PASSWORD:-}"
  if [ -z "$pw" ]; then echo "render-users-acl.sh: set SRI_${user}_REDIS_PASSWORD" >&2; exit 1; fi
done
sed -e "s/{{SRI_ADMIN_REDIS_PASSWORD_SHA256}}/$(sha256 "$SRI_ADMIN_REDIS_PASSWORD")/" \
    -e "s/{{SRI_API_REDIS_PASSWORD_SHA256}}/$(sha256 "$SRI_API_REDIS_PASSWORD")/" \
    -e "s/{{SRI_WORKER_REDIS_PASSWORD_SHA256}}/$(sha256 "$SRI_WORKER_REDIS_PASSWORD")/" \
    -e "s/{{SRI_KEDA_REDIS_PASSWORD_SHA256}}/$(sha256 "$SRI_KEDA_REDIS_PASSWORD")/" \
    -e "s/{{SRI_PRODUCER_REDIS_PASSWORD_SHA256}}/$(sha256 "$SRI_PRODUCER_REDIS_PASSWORD")/" \
    "$here/users.acl"
