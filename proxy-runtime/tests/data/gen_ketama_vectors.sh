#!/usr/bin/env bash
# Produce tests/data/ketama_nginx_vectors.txt: which of five upstream servers nginx's
# `hash $arg_key consistent;` picks for 1,000 keys. Needs nginx (Debian: nginx-light)
# and curl. Run from the repository root:
#   bash proxy-runtime/tests/data/gen_ketama_vectors.sh
set -euo pipefail
work=$(mktemp -d)
trap 'kill $(cat "$work/nginx.pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
servers=""
backends=""
for p in 18081 18082 18083 18084 18085; do
  servers+="    server 127.0.0.1:$p;"$'\n'
  backends+="  server { listen 127.0.0.1:$p; location / { return 200 \"127.0.0.1:$p\"; } }"$'\n'
done
cat > "$work/nginx.conf" <<CONF
worker_processes 1;
daemon on;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 64; }
http {
  access_log off;
  upstream pool {
    hash \$arg_key consistent;
$servers  }
  server { listen 127.0.0.1:18080; location / { proxy_pass http://pool; } }
$backends}
CONF
nginx -p "$work" -c "$work/nginx.conf"
sleep 0.5
out=proxy-runtime/tests/data/ketama_nginx_vectors.txt
{
  echo "# nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'): hash \$arg_key consistent over"
  echo "# 127.0.0.1:18081 .. 127.0.0.1:18085 (weight 1). Made by gen_ketama_vectors.sh."
  for i in $(seq 0 999); do
    key="user-$i"
    echo "$key $(curl -s "http://127.0.0.1:18080/?key=$key")"
  done
} > "$out"
echo "wrote $out"
