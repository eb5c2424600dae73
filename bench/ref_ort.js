#!/usr/bin/env node
// ONNX Runtime reference for bench/run.sh: times one (model, batch) cell in its
// own process and prints one JSON line.
//
// Best mode for the CPU execution provider: graphOptimizationLevel 'all'
// (conv+bn+relu fusion, NCHWc layout transformation for MLAS), intra-op
// threads = --threads, inter-op 1, sequential execution, memory arena and
// memory patterns on (the defaults).
//
// The timed region matches the other engines: an NCHW float32 batch in,
// logits out (session.run awaits a worker thread; its overhead is included, as
// it is for any caller of this API). The input follows the shared pattern
// x[i] = (i % 251) / 125 - 1 so the logits' checksum can be compared with
// PyTorch, which runs the same weights (bench/export_onnx.py).
'use strict';

const fs = require('fs');
const path = require('path');

function parseArgs(argv) {
  const a = { model: null, arch: null, batch: 1, threads: 2, warmup: 10, iters: 30, size: 224 };
  for (let i = 2; i < argv.length; i++) {
    const k = argv[i], v = argv[i + 1];
    switch (k) {
      case '--model': a.model = v; i++; break;
      case '--arch': a.arch = v; i++; break;
      case '--batch': a.batch = parseInt(v, 10); i++; break;
      case '--threads': a.threads = parseInt(v, 10); i++; break;
      case '--warmup': a.warmup = parseInt(v, 10); i++; break;
      case '--iters': a.iters = parseInt(v, 10); i++; break;
      case '--size': a.size = parseInt(v, 10); i++; break;
      default:
        process.stderr.write(`usage: ref_ort.js --model FILE.onnx [--arch NAME] [--batch N] ` +
                             `[--threads N] [--warmup N] [--iters N] [--size 224]\n`);
        process.exit(2);
    }
  }
  if (!a.model || !(a.batch >= 1) || !(a.threads >= 1) || !(a.iters >= 1) || !(a.warmup >= 0)) {
    process.stderr.write('ref_ort.js: --model is required; batch, threads, iters >= 1\n');
    process.exit(2);
  }
  if (!a.arch) a.arch = path.basename(a.model, '.onnx');
  return a;
}

function vmStatus() {
  const s = fs.readFileSync('/proc/self/status', 'utf8');
  const get = (k) => {
    const m = s.match(new RegExp('^' + k + ':\\s+(\\d+)', 'm'));
    return m ? parseInt(m[1], 10) : -1;
  };
  return { hwm: get('VmHWM'), rss: get('VmRSS') };
}

async function main() {
  const a = parseArgs(process.argv);
  const t0 = process.hrtime.bigint();
  const ort = require('onnxruntime-node');
  const session = await ort.InferenceSession.create(a.model, {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: a.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    enableCpuMemArena: true,
    enableMemPattern: true,
  });
  const inName = session.inputNames[0], outName = session.outputNames[0];

  const numel = a.batch * 3 * a.size * a.size;
  const data = new Float32Array(numel);
  for (let i = 0; i < numel; i++) data[i] = (i % 251) / 125.0 - 1.0;
  const input = new ort.Tensor('float32', data, [a.batch, 3, a.size, a.size]);
  const feeds = { [inName]: input };
  const setupMs = Number(process.hrtime.bigint() - t0) / 1e6;

  let out;
  for (let i = 0; i < a.warmup; i++) out = await session.run(feeds);
  const times = [];
  for (let i = 0; i < a.iters; i++) {
    const s = process.hrtime.bigint(); // monotonic
    out = await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - s) / 1e6);
  }
  const logits = out[outName].data;
  let checksum = 0;
  let absmax = 0;
  for (let i = 0; i < logits.length; i++) {
    checksum += logits[i];
    absmax = Math.max(absmax, Math.abs(logits[i]));
  }
  const vm = vmStatus();
  const sorted = [...times].sort((x, y) => x - y);
  const n = sorted.length;
  const median = n % 2 ? sorted[(n - 1) / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
  let version = '?';
  try {
    version = require('onnxruntime-node/package.json').version;
  } catch (e) { /* keep '?' */ }
  const rec = {
    engine: 'onnxruntime',
    version,
    arch: a.arch,
    batch: a.batch,
    threads: a.threads,
    mode: 'cpu-ep,opt=all,intra=' + a.threads + ',inter=1,sequential',
    warmup: a.warmup,
    iters: a.iters,
    setup_ms: Math.round(setupMs * 10) / 10,
    times_ms: times.map((t) => Math.round(t * 1e4) / 1e4),
    median_ms: Math.round(median * 1e4) / 1e4,
    vmhwm_kb: vm.hwm,
    vmrss_kb: vm.rss,
    checksum,
    out_absmax: absmax,
    out_head: Array.from(logits.slice(0, 8)),
  };
  process.stdout.write(JSON.stringify(rec) + '\n');
  await session.release();
}

main().catch((err) => {
  process.stderr.write(`ref_ort.js: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
