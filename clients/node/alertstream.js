// The alertstream client library for Node.js: grpc-js with the one proto (proto/alertstream/v1/alertstream.proto)
// loaded at run time, so nothing is generated. `connect` makes a client; `stream` runs one AlertService.Stream
// call, writing readings with backpressure (it waits for 'drain' whenever grpc-js says its buffer is full) and
// handing each alert over as it arrives.
'use strict';

const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_ROOT = path.resolve(__dirname, '..', '..', 'proto');

// The AlertService client class. Field names as in the proto (`sensor_id`); `options` may override how 64-bit
// numbers, enums and defaults come out (by default as proto3 JSON writes them: strings and enum names).
function loadService(options = {}) {
  const definition = protoLoader.loadSync('alertstream/v1/alertstream.proto', {
    includeDirs: [PROTO_ROOT],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    ...options,
  });
  return grpc.loadPackageDefinition(definition).alertstream.v1.AlertService;
}

// A client of the server at `target` (HOST:PORT), in plaintext.
function connect(target, options = {}) {
  const AlertService = loadService(options.loader);
  return new AlertService(target, grpc.credentials.createInsecure());
}

// Streams `readings` (any iterable or async iterable of Reading objects) on one Stream call and calls `onAlert`
// with each alert as it arrives. Half-closes after the last reading; resolves once the server has ended the stream
// with OK, and rejects with the gRPC error otherwise (then writing stops).
async function stream(client, readings, onAlert, metadata = new grpc.Metadata()) {
  const call = client.Stream(metadata);
  const done = new Promise((resolve, reject) => {
    call.on('data', onAlert);
    call.on('error', reject);
    call.on('end', resolve);
  });
  // Seen by the write loop, so that it stops when the call fails; the caller sees the failure through `done`.
  const failed = done.then(
    () => false,
    () => true,
  );
  for await (const reading of readings) {
    if (!call.write(reading)) {
      const drained = new Promise((resolve) => call.once('drain', () => resolve(false)));
      if (await Promise.race([drained, failed])) break;
    }
  }
  call.end();
  return done;
}

module.exports = { grpc, loadService, connect, stream };
