'use strict';
// Minimal Node.js `ws` broadcast server: the fan-out baseline for streamgate.
//
// Same interface as the gateway, as far as the benchmark uses it:
//   POST /api/v1/publish   Authorization: Bearer <key>
//                          body {"events":[{"topic":..,"data":{..}}, ...]}
//                          -> 200 {"accepted":n,"duplicates":0}
//   GET  /healthz          -> 200
//   WS   /ws/public        {"op":"subscribe","args":[topics],"req_id":..}
//                          -> {"op":"subscribed","args":[..],"req_id":..}
//                          then {"op":"event","topic","data","offset","epoch","server_ts_ms"}
//
// Deliberately plain: one JSON.stringify per event, then ws.send() to every
// subscriber. No batching, no pre-framing, no compression.
//
// Usage: node server.js [port] [host]
//   env PORT, HOST, STREAMGATE_PRODUCER_KEY (or BENCH_PRODUCER_KEY),
//       PING_INTERVAL_MS (default 30000; 0 disables the heartbeat)

const http = require('http');
const { WebSocketServer, WebSocket } = require('ws');

const port = Number(process.argv[2] || process.env.PORT || 8080);
const host = process.argv[3] || process.env.HOST || '127.0.0.1';
const key = process.env.STREAMGATE_PRODUCER_KEY || process.env.BENCH_PRODUCER_KEY || '';
const pingIntervalMs = Number(process.env.PING_INTERVAL_MS || 30000);
const MAX_BODY = 16 * 1024 * 1024;

if (!key) {
  console.error('server.js: set STREAMGATE_PRODUCER_KEY');
  process.exit(2);
}

// topic -> { offset, subs: Set<WebSocket> }
const topics = new Map();
function topicState(name) {
  let t = topics.get(name);
  if (t === undefined) {
    t = { offset: 0, subs: new Set() };
    topics.set(name, t);
  }
  return t;
}

function reply(res, status, obj) {
  const body = JSON.stringify(obj);
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(body);
}

function publish(events) {
  for (const ev of events) {
    const t = topicState(ev.topic);
    t.offset += 1;
    const msg = JSON.stringify({
      op: 'event',
      topic: ev.topic,
      data: ev.data,
      offset: t.offset,
      epoch: 'node',
      server_ts_ms: Date.now(),
    });
    for (const client of t.subs) {
      if (client.readyState === WebSocket.OPEN) client.send(msg);
    }
  }
}

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/healthz') {
    reply(res, 200, { status: 'ok' });
    return;
  }
  if (req.method === 'POST' && req.url === '/api/v1/publish') {
    if (req.headers.authorization !== 'Bearer ' + key) {
      reply(res, 401, { error: 'unauthorized' });
      req.resume();
      return;
    }
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size <= MAX_BODY) chunks.push(c);
    });
    req.on('end', () => {
      if (size > MAX_BODY) {
        reply(res, 413, { error: 'body too large' });
        return;
      }
      let body;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch (e) {
        reply(res, 400, { error: 'invalid json' });
        return;
      }
      const events = body && body.events;
      if (!Array.isArray(events) ||
          !events.every((e) => e && typeof e.topic === 'string' && e.data !== undefined)) {
        reply(res, 400, { error: 'expected {"events":[{"topic":..,"data":..}]}' });
        return;
      }
      publish(events);
      reply(res, 200, { accepted: events.length, duplicates: 0 });
    });
    return;
  }
  reply(res, 404, { error: 'not found' });
});

const wss = new WebSocketServer({
  server,
  path: '/ws/public',
  perMessageDeflate: false,
  maxPayload: 64 * 1024,
});

wss.on('connection', (ws) => {
  ws.isAlive = true;
  ws.topics = [];
  ws.on('pong', () => { ws.isAlive = true; });
  ws.on('message', (raw, isBinary) => {
    let m;
    try {
      m = JSON.parse(raw.toString('utf8'));
    } catch (e) {
      ws.send(JSON.stringify({ op: 'error', error: 'invalid json' }));
      return;
    }
    if (m && m.op === 'subscribe' && Array.isArray(m.args)) {
      for (const name of m.args) {
        if (typeof name !== 'string') continue;
        topicState(name).subs.add(ws);
        ws.topics.push(name);
      }
      ws.send(JSON.stringify({ op: 'subscribed', args: m.args, req_id: m.req_id }));
    } else {
      ws.send(JSON.stringify({ op: 'error', error: 'unsupported op', req_id: m && m.req_id }));
    }
  });
  ws.on('close', () => {
    for (const name of ws.topics) {
      const t = topics.get(name);
      if (t) t.subs.delete(ws);
    }
  });
  ws.on('error', () => {});
});

// Standard ws heartbeat: ping everyone, drop peers that did not pong since
// the previous round.
let heartbeat = null;
if (pingIntervalMs > 0) {
  heartbeat = setInterval(() => {
    for (const ws of wss.clients) {
      if (!ws.isAlive) {
        ws.terminate();
        continue;
      }
      ws.isAlive = false;
      ws.ping();
    }
  }, pingIntervalMs);
}

function shutdown() {
  if (heartbeat) clearInterval(heartbeat);
  for (const ws of wss.clients) ws.terminate();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

server.listen({ port, host, backlog: 4096 }, () => {
  console.log(`node baseline listening on http://${host}:${server.address().port} (ws ${require('ws/package.json').version})`);
});
