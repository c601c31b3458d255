# Sourced by the bench scripts (needs their `die`).
# free_port: a port nobody listens on, below the kernel's ephemeral range: client sockets (a
# previous run's, still in TIME_WAIT, or the load generator's) take their ports from that
# range, and a server port inside it could collide with them ("Address already in use").
free_port() {
    local port low=32768 span
    if [[ -r /proc/sys/net/ipv4/ip_local_port_range ]]; then
        read -r low _ </proc/sys/net/ipv4/ip_local_port_range
    fi
    ((low > 10001)) || die "the ephemeral port range starts at $low: no room below it for servers"
    span=$((low - 10000))
    for _ in $(seq 1 100); do
        port=$((10000 + (RANDOM * 32768 + RANDOM) % span))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    die "no free port found"
}
