'use strict';
// Node `cluster` + `node:http`: the primary forks BENCH_WORKERS workers that share
// one listening socket (Node's default round-robin scheduling on Linux).
// Routes match bench/contenders/flask_app.py: GET /uwsgi/ (HTML), POST /api/<n> (JSON echo).
// Usage: node node-cluster.cjs <port>    (host 127.0.0.1)
const cluster = require('node:cluster');
const http = require('node:http');

const port = Number(process.argv[2]);
const workers = Number(process.env.BENCH_WORKERS || 2);

if (cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
  // Stop the workers with us: the benchmark signals only the primary's process group.
  const stop = () => {
    for (const w of Object.values(cluster.workers)) w.kill('SIGTERM');
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  const hello = '<html><body><h1>Hello from node:http</h1></body></html>';
  http
    .createServer((req, res) => {
      if (req.method === 'GET' && req.url === '/uwsgi/') {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        res.end(hello);
        return;
      }
      const m = /^\/api\/(\d+)$/.exec(req.url || '');
      if (req.method === 'POST' && m) {
        const chunks = [];
        req.on('data', (c) => chunks.push(c));
        req.on('end', () => {
          let data;
          try {
            data = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            res.writeHead(400, { 'content-type': 'application/json' });
            res.end('{"ok":false,"error":{"code":"BAD_JSON","message":"bad json"}}');
            return;
          }
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ ok: true, funcNo: Number(m[1]), data }));
        });
        return;
      }
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
    })
    .listen(port, '127.0.0.1');
}
