#!/usr/bin/env node
// Fault probes with the real grpc-js client, which writes each message to its HTTP/2 stream on its own: each checks
// that every alert owed arrives, in order, and that the connection is never cut.
//
//   stall        streams readings on N streams of one channel while the server process is stopped (SIGSTOP) for a
//                while and continued (SIGCONT): what a busy machine or a page-fault storm does to a server.
//   slow-reader  sends readings without reading alerts for a while (the server must push back through flow control,
//                not cut the connection), then reads every alert.
//
// Every reading of a stream yields exactly one alert with the default rules (temperature alternates around 10).
// Writes respect backpressure: when `write` returns false the probe waits for 'drain'. Prints `OK <alerts>` and exits
// 0, or prints what failed and exits 1.
//
//   node clients/node/fault_probe.js stall --target 127.0.0.1:50051 --server-pid PID
'use strict';

const { parseArgs } = require('node:util');
const { grpc, loadService: loadWith } = require('./alertstream');

// The probes check seqs as numbers.
const loadService = () => loadWith({ longs: Number, enums: undefined });

function reading(sensor, seq, padded) {
  const values = { temperature: seq % 2 ? 5.0 : 15.0 };
  if (padded) {
    // About 140 bytes on the wire, as in the report the Python probe comes from.
    Object.assign(values, { pressure_kpa: 101.3, humidity_pct: 40.0, vibration_mm_s: 1.5 });
  }
  return { sensor_id: sensor, values, seq };
}

// Writes every reading, waiting for 'drain' whenever grpc-js says its buffer is full, then half-closes.
async function send(call, sensor, readings, padded, onWritten) {
  for (let seq = 1; seq <= readings; seq++) {
    onWritten(seq);
    if (!call.write(reading(sensor, seq, padded))) {
      await new Promise((resolve) => call.once('drain', resolve));
    }
  }
  call.end();
}

// Reads every alert of a stream; resolves to what went wrong, or null.
function drain(call, readings) {
  return new Promise((resolve) => {
    let last = 0;
    let failure = null;
    call.on('data', (alert) => {
      if (failure === null && alert.reading_seq !== last + 1) {
        failure = `alert for seq ${alert.reading_seq} after ${last}`;
      }
      last = alert.reading_seq;
    });
    call.on('error', (error) => {
      resolve(`${grpc.status[error.code]} after ${last} alerts: ${error.details}`);
    });
    call.on('end', () => {
      if (failure === null && last !== readings) failure = `${last} alerts for ${readings} readings`;
      resolve(failure);
    });
  });
}

const sleep = (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));

async function stall(client, options) {
  const readings = options.readings;
  let stopped;
  const begun = new Promise((resolve) => {
    stopped = resolve;
  });
  const staller = (async () => {
    await begun;
    process.kill(options.serverPid, 'SIGSTOP');
    await sleep(options.stallSeconds);
    process.kill(options.serverPid, 'SIGCONT');
  })();
  const streams = [];
  for (let index = 0; index < options.streams; index++) {
    const call = client.Stream();
    const onWritten = (seq) => {
      if (index === 0 && seq === Math.min(1000, readings)) stopped();
    };
    const result = drain(call, readings);
    send(call, `s${index}`, readings, false, onWritten).catch((error) => call.destroy(error));
    streams.push(result.then((failure) => (failure ? `stream ${index}: ${failure}` : null)));
  }
  const failures = (await Promise.all(streams)).filter((failure) => failure !== null);
  await staller;
  return { failures, alerts: options.streams * readings };
}

async function slowReader(client, options) {
  const call = client.Stream();
  // Not reading: what the client sends meanwhile waits in windows and buffers, or is held back by 'drain'. A stream
  // paused explicitly stays paused when 'data' listeners are added, so drain() can listen (for errors too) from now.
  call.pause();
  const result = drain(call, options.readings);
  send(call, 'line-1', options.readings, true, () => {}).catch((error) => call.destroy(error));
  await sleep(options.pauseSeconds);
  call.resume();
  const failure = await result;
  return { failures: failure ? [failure] : [], alerts: options.readings };
}

function parse(argv) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      target: { type: 'string' },
      'server-pid': { type: 'string' },
      streams: { type: 'string', default: '1' },
      readings: { type: 'string' },
      'stall-seconds': { type: 'string', default: '0.5' },
      'pause-seconds': { type: 'string', default: '3' },
    },
  });
  const probe = positionals[0];
  if (!['stall', 'slow-reader'].includes(probe) || !values.target) {
    throw new Error('usage: fault_probe.js stall|slow-reader --target HOST:PORT [--server-pid PID] [options]');
  }
  if (probe === 'stall' && !values['server-pid']) throw new Error('stall needs --server-pid');
  return {
    probe,
    target: values.target,
    serverPid: Number(values['server-pid']),
    streams: Number(values.streams),
    readings: Number(values.readings ?? (probe === 'stall' ? 200000 : 100000)),
    stallSeconds: Number(values['stall-seconds']),
    pauseSeconds: Number(values['pause-seconds']),
  };
}

async function main() {
  const options = parse(process.argv.slice(2));
  const AlertService = loadService();
  const client = new AlertService(options.target, grpc.credentials.createInsecure());
  const run = options.probe === 'stall' ? stall : slowReader;
  const { failures, alerts } = await run(client, options);
  client.close();
  if (failures.length > 0) {
    console.log(failures.slice(0, 5).join('\n'));
    return 1;
  }
  console.log('OK', alerts);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.log(String(error && error.stack ? error.stack : error));
    process.exit(1);
  },
);
