#!/usr/bin/env node
// Streaming sensor simulator for alertstream, the Node.js twin of clients/python/sensor_sim.py: each sensor
// (line-1 ... line-N) reports a temperature (~20) and a pH (~5) that drift in a mean-reverting random walk with
// noise, and now and then go on an excursion below 10 degrees or above pH 5.5, which the default rules watch for.
// Every reading goes over ONE AlertService.Stream call, written with backpressure; each alert is printed as it
// arrives. After --count readings it half-closes and exits 0 once the server ends the stream with OK.
//
//   node clients/node/sensor_sim.js --sensors 3 --rate 50 --count 1000 --seed 1 [--json] [--quiet]
'use strict';

const { parseArgs } = require('node:util');
const { grpc, connect, stream } = require('./alertstream');

// A small seeded generator (mulberry32), so that --seed gives the same run every time.
function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gauss(rng, sigma) {
  // Box-Muller.
  const u = 1 - rng();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng()) * sigma;
}

class Sensor {
  constructor(id, rng, excursionRate) {
    Object.assign(this, { id, rng, excursionRate, tempDrift: 0, phDrift: 0, cold: 0, depth: 0, acid: 0, height: 0 });
  }

  read() {
    const rng = this.rng;
    this.tempDrift += -0.05 * this.tempDrift + gauss(rng, 0.15);
    this.phDrift += -0.05 * this.phDrift + gauss(rng, 0.01);
    if (this.cold === 0 && rng() < this.excursionRate) {
      this.cold = 3 + Math.floor(rng() * 6);
      this.depth = 11 + rng() * 4;
    }
    if (this.acid === 0 && rng() < this.excursionRate) {
      this.acid = 3 + Math.floor(rng() * 6);
      this.height = 0.7 + rng() * 0.5;
    }
    let temperature = 20 + this.tempDrift + gauss(rng, 0.3);
    if (this.cold > 0) {
      temperature -= this.depth;
      this.cold -= 1;
    }
    let ph = 5 + this.phDrift + gauss(rng, 0.03);
    if (this.acid > 0) {
      ph += this.height;
      this.acid -= 1;
    }
    return { temperature: Math.round(temperature * 100) / 100, pH: Math.round(ph * 1000) / 1000 };
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The readings, paced at `rate` a second in total (0: as fast as backpressure allows), `count` of them (0: forever).
async function* readings(sensors, { rate, count }, sent) {
  const start = Date.now();
  for (let seq = 1; count === 0 || seq <= count; seq++) {
    if (rate > 0) {
      const delay = start + ((seq - 1) * 1000) / rate - Date.now();
      if (delay > 0) await sleep(delay);
    }
    const sensor = sensors[(seq - 1) % sensors.length];
    const now = Date.now();
    sent.count = seq;
    yield {
      sensor_id: sensor.id,
      values: sensor.read(),
      seq,
      time: { seconds: Math.floor(now / 1000), nanos: (now % 1000) * 1e6 },
    };
  }
}

function describe(alert) {
  const state = alert.state.replace('ALERT_STATE_', '');
  const values = Object.entries(alert.values)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  return `${state}  ${alert.sensor_id}  ${alert.rule}  "${alert.message}"  seq=${alert.reading_seq}  ${values}`.trim();
}

async function main() {
  const { values: options } = parseArgs({
    options: {
      target: { type: 'string', default: '127.0.0.1:50051' },
      sensors: { type: 'string', default: '1' },
      rate: { type: 'string', default: '10' },
      count: { type: 'string', default: '0' },
      seed: { type: 'string' },
      'excursion-rate': { type: 'string', default: '0.02' },
      json: { type: 'boolean', default: false },
      quiet: { type: 'boolean', default: false },
    },
  });
  const sensorCount = Number(options.sensors);
  const rate = Number(options.rate);
  const count = Number(options.count);
  const excursionRate = Number(options['excursion-rate']);
  if (!(Number.isInteger(sensorCount) && sensorCount >= 1)) throw new Error('--sensors must be a whole number from 1');
  if (!(rate >= 0)) throw new Error('--rate must be 0 or more');
  if (!(Number.isInteger(count) && count >= 0)) throw new Error('--count must be a whole number from 0');
  if (!(excursionRate >= 0 && excursionRate <= 1)) throw new Error('--excursion-rate must be between 0 and 1');
  const rng = random(options.seed === undefined ? Date.now() : Number(options.seed));
  const sensors = Array.from({ length: sensorCount }, (_, i) => new Sensor(`line-${i + 1}`, rng, excursionRate));

  const client = connect(options.target);
  const sent = { count: 0 };
  let alerts = 0;
  try {
    await stream(client, readings(sensors, { rate, count }, sent), (alert) => {
      alerts += 1;
      console.log(options.json ? JSON.stringify(alert) : describe(alert));
    });
  } catch (error) {
    console.error(`sensor_sim: the stream failed: ${grpc.status[error.code] ?? error.code}: ${error.details ?? error.message}`);
    return 1;
  } finally {
    client.close();
  }
  if (!options.quiet) console.error(`sensor_sim: ${sent.count} readings, ${alerts} alerts`);
  return 0;
}

// stdout closed (piped into head): stop quietly, as the Python simulator does.
process.stdout.on('error', (error) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    console.error(`sensor_sim: ${error.message}`);
    process.exitCode = 2;
  },
);
