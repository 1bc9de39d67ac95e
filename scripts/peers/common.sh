# Sourced by the start/stop scripts: the working folder ($1, default target/peers in the repo),
# made absolute and reachable by the peers' own users.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
work=${1:-$repo/target/peers}
mkdir -p "$work"
work=$(cd "$work" && pwd)

# Copy a config from this folder into the working folder, with $PEERS replaced by its path.
render() { sed "s|\$PEERS|$work|g" "$here/$1" > "$work/$1"; }

# Wait up to $2 seconds for a TCP listener on 127.0.0.1:$1.
wait_port() {
    for _ in $(seq 1 $(( $2 * 4 ))); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.25
    done
    return 1
}
