/**
 * The shell steps of the ops tasks, as bodies for the write-execute executor (the safety header comes first there).
 * They read everything from their environment — `SRI_COMPOSE` (`docker compose` or `docker-compose`), `COMPOSE_FILE`,
 * `COMPOSE_PROJECT_NAME`, `SRI_SERVICES` (space-separated, empty = all), the version variable — so no value is
 * pasted into a script's text, and secrets only ever come on stdin.
 */

const COMPOSE_FN = 'compose() { $SRI_COMPOSE -f "$COMPOSE_FILE" -p "$COMPOSE_PROJECT_NAME" "$@"; }';

/** Prints `service <name> <configured image> <image id>` for each container of the services. */
export const RECORD_BODY = `${COMPOSE_FN}
# shellcheck disable=SC2086 # SRI_SERVICES is a list of names, split on purpose
ids=$(compose ps -q $SRI_SERVICES)
for id in $ids; do
  docker inspect --format 'service {{index .Config.Labels "com.docker.compose.service"}} {{.Config.Image}} {{.Image}}' "$id"
done`;

export const PULL_BODY = `${COMPOSE_FN}
# shellcheck disable=SC2086
compose pull $SRI_SERVICES`;

export const UP_BODY = `${COMPOSE_FN}
# shellcheck disable=SC2086
compose up -d --no-build $SRI_SERVICES`;

/** Puts each recorded image id back under the name it ran as (the tag may have been pushed again meanwhile). */
export const RETAG_BODY = `while read -r image id; do
  [ -n "$image" ] || continue
  docker tag "$id" "$image"
  echo "tagged $id as $image"
done <<< "$SRI_ROLLBACK_IMAGES"`;

/**
 * Runs the migrations in a one-off container of the service's new image, with the environment and network of the
 * service's running container (its DATABASE_URL included): \`docker run --rm\`, the environment through an env-file
 * read from a pipe, so no value is on a command line. (\`compose run\` would do the same, but compose 1.29 asks the
 * engine for links, which podman's Docker API refuses.)
 */
export const MIGRATE_BODY = `${COMPOSE_FN}
id=$(compose ps -q "$SRI_MIGRATE_SERVICE" | head -n 1)
if [ -z "$id" ]; then echo "no running container of $SRI_MIGRATE_SERVICE"; exit 1; fi
image=$(docker inspect --format '{{.Image}}' "$id")
network=$(docker inspect --format '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}' "$id" | awk '{print $1}')
echo "one-off container of $SRI_MIGRATE_SERVICE: image $image, network \${network:-default}"
# shellcheck disable=SC2086 # the command is split on spaces on purpose
docker run --rm \${network:+--network "$network"} --env-file <(docker inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$id") "$image" $SRI_MIGRATE_COMMAND`;

/**
 * Waits until every container of the services is healthy: its engine health status says so, or — when the engine
 * runs no health checks itself (podman without systemd keeps them at "starting") — its own health check command,
 * run with \`docker exec\`, passes; a container without a health check counts when it is running. Fails at the deadline.
 */
export const HEALTH_BODY = `${COMPOSE_FN}
deadline=$((SECONDS + SRI_HEALTH_TIMEOUT_S))
check() {
  local id=$1 service state health kind
  read -r state health service < <(docker inspect --format '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{index .Config.Labels "com.docker.compose.service"}}' "$id")
  service=\${service:-$id}
  if [ "$state" != running ]; then echo "$service: $state"; return 1; fi
  if [ "$health" = healthy ]; then echo "$service: healthy"; return 0; fi
  kind=$(docker inspect --format '{{if .Config.Healthcheck}}{{if .Config.Healthcheck.Test}}{{index .Config.Healthcheck.Test 0}}{{end}}{{end}}' "$id")
  case "$kind" in
    CMD)
      mapfile -t args < <(docker inspect --format '{{range $i, $a := .Config.Healthcheck.Test}}{{if $i}}{{$a}}{{"\\n"}}{{end}}{{end}}' "$id")
      # docker inspect ends its output with a newline of its own: one empty line too many.
      if [ "\${#args[@]}" -gt 0 ] && [ -z "\${args[-1]}" ]; then unset 'args[-1]'; fi
      if docker exec "$id" "\${args[@]}" >/dev/null 2>&1; then echo "$service: health check passed"; return 0; fi ;;
    CMD-SHELL)
      cmd=$(docker inspect --format '{{index .Config.Healthcheck.Test 1}}' "$id")
      if docker exec "$id" /bin/sh -c "$cmd" >/dev/null 2>&1; then echo "$service: health check passed"; return 0; fi ;;
    ""|NONE) echo "$service: running (no health check)"; return 0 ;;
  esac
  echo "$service: $health"
  return 1
}
while :; do
  # shellcheck disable=SC2086
  ids=$(compose ps -q $SRI_SERVICES)
  ok=1
  [ -n "$ids" ] || { echo "no container runs"; ok=0; }
  for id in $ids; do check "$id" || ok=0; done
  if [ "$ok" = 1 ]; then echo "every service is healthy"; exit 0; fi
  if [ "$SECONDS" -ge "$deadline" ]; then echo "not healthy after $SRI_HEALTH_TIMEOUT_S s"; exit 1; fi
  sleep 2
done`;

/**
 * Logs in to the registry: the token arrives on stdin as JSON (`{"registryToken":…}`), is decoded by the worker's
 * own Node.js and piped to \`docker login --password-stdin\` — never in argv, the environment or a file.
 */
export const LOGIN_BODY = `"$SRI_NODE" -e 'let s="";process.stdin.on("data",(d)=>{s+=d}).on("end",()=>{process.stdout.write(JSON.parse(s).registryToken)})' \\
  | docker login --username "$OPS_REGISTRY_USER" --password-stdin "$OPS_REGISTRY"`;

export interface RunningService { service: string; image: string; imageId: string }

/** Parses RECORD_BODY's lines. */
export function parseRecord(lines: readonly string[]): RunningService[] {
  const out: RunningService[] = [];
  for (const l of lines) {
    const m = /^service (\S+) (\S+) (\S+)$/.exec(l.trim());
    if (m) out.push({ service: m[1]!, image: m[2]!, imageId: m[3]! });
  }
  return out;
}

/** `registry:5000/sri/platform:2` → `2`; undefined for a digest or no tag. */
export function tagOf(image: string): string | undefined {
  const lastSlash = image.lastIndexOf('/');
  const name = image.slice(lastSlash + 1);
  if (name.includes('@')) return undefined;
  const colon = name.lastIndexOf(':');
  return colon === -1 ? 'latest' : name.slice(colon + 1);
}
