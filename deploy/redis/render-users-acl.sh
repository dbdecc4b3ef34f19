#!/bin/sh
# Prints deploy/redis/users.acl with each {{SRI_<USER>_REDIS_PASSWORD_SHA256}} replaced by the SHA-256 of the
# password in the environment variable SRI_<USER>_REDIS_PASSWORD, for redis-server --aclfile (docs/security.md
# "Redis ACL"). The passwords themselves never enter the file. Usage:
#   SRI_ADMIN_REDIS_PASSWORD=… SRI_API_REDIS_PASSWORD=… SRI_WORKER_REDIS_PASSWORD=… SRI_ENROL_REDIS_PASSWORD=… \
#   [SRI_KEDA_REDIS_PASSWORD=…] [SRI_PRODUCER_REDIS_PASSWORD=…] [SRI_OPS_REDIS_PASSWORD=…] [SRI_ACL_KEEP_FROM=/data/users.acl] \
#   sh deploy/redis/render-users-acl.sh > /data/users.acl.new && mv /data/users.acl.new /data/users.acl
# ADMIN, API, WORKER and ENROL are required. KEDA, PRODUCER and OPS (the operations worker, docs/operations.md) are
# optional: without a password that user is `off`.
# SRI_ACL_KEEP_FROM: a previous ACL file (the one Redis wrote with ACL SAVE); its `user worker-*` lines — the users the
# API created for enrolled workers — are carried over, so re-rendering at every Redis start does not drop them.
set -eu
here=$(dirname "$0")
sha256() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
script=""
for user in ADMIN API WORKER ENROL KEDA PRODUCER OPS; do
  eval "pw=\${SRI_${user}_REDIS_PASSWORD:-}"
  name=$(printf '%s' "$user" | tr 'A-Z' 'a-z')
  if [ -n "$pw" ]; then
    script="$script
s/{{SRI_${user}_REDIS_PASSWORD_SHA256}}/$(sha256 "$pw")/"
  elif [ "$user" = KEDA ] || [ "$user" = PRODUCER ] || [ "$user" = OPS ]; then
    echo "render-users-acl.sh: SRI_${user}_REDIS_PASSWORD is unset: user sri-$name is off" >&2
    script="$script
s/^user sri-$name on #{{SRI_${user}_REDIS_PASSWORD_SHA256}} /user sri-$name off /"
  else
    echo "render-users-acl.sh: set SRI_${user}_REDIS_PASSWORD" >&2
    exit 1
  fi
done
sed -e "$script" "$here/users.acl"
keep=${SRI_ACL_KEEP_FROM:-}
if [ -n "$keep" ] && [ -f "$keep" ]; then
  grep '^user worker-' "$keep" || true
fi
