// ws_client.mjs: a websocket client for test_web.py (node's WebSocket:
// run with --experimental-websocket on Node 20).
//
//   node --experimental-websocket ws_client.mjs URL [SEND [EXPECT]]
//
// Connects; every second sends SEND (if given) until a received message
// (all received bytes so far, as text) contains EXPECT, then prints
// "OK <bytes received>" and exits 0. Without EXPECT it prints the first
// message as hex and exits. Exits 1 with a reason after 60 s, or when
// the connection closes or fails first.
const [url, send, expect] = process.argv.slice(2);
const ws = new WebSocket(url);
ws.binaryType = 'arraybuffer';
let got = Buffer.alloc(0);
let timer = null;
const fail = (why) => { console.log('FAILED ' + why); process.exit(1); };
setTimeout(() => fail('timeout; received: ' + JSON.stringify(got.toString('latin1').slice(-300))), 60000);
ws.onopen = () => {
  if (send) timer = setInterval(() => ws.send(new TextEncoder().encode(send)), 1000);
  if (send) ws.send(new TextEncoder().encode(send));
};
ws.onmessage = (e) => {
  const chunk = Buffer.from(e.data instanceof ArrayBuffer ? e.data : new TextEncoder().encode(e.data));
  got = Buffer.concat([got, chunk]);
  if (!expect) {
    console.log('FIRST ' + chunk.toString('hex'));
    process.exit(0);
  }
  if (got.toString('latin1').includes(expect)) {
    clearInterval(timer);
    console.log('OK ' + got.length);
    process.exit(0);
  }
};
ws.onerror = (e) => fail('error: ' + (e.message || e.type));
ws.onclose = (e) => fail(`closed ${e.code} ${e.reason}`);
