// Ping a heartbeat monitor from Node.js (18 or newer: global fetch) without ever failing
// the job. Copy `ping` into your job, or run a command under it:
//
//   PING_URL=... node ping.js ./generate-report.sh --daily
//
// `ping()` resolves to false instead of throwing when the receiver can't be reached.
"use strict";

const { spawnSync } = require("node:child_process");
const { constants } = require("node:os");

const BODY_LIMIT = 10000; // the receiver keeps the first 10,000 bytes of a body

// attempts: tries before giving up (default $PING_ATTEMPTS, else 5).
async function ping(suffix = "", body = undefined, attempts = Number(process.env.PING_ATTEMPTS) || 5) {
  const url = process.env.PING_URL;
  if (!url) {
    console.error("ping.js: PING_URL is not set; not pinging");
    return false;
  }
  for (let attempt = 0; attempt < attempts; attempt++) {
    try {
      const response = await fetch(url + suffix, {
        method: body === undefined ? "GET" : "POST",
        body,
        signal: AbortSignal.timeout(10000), // never hang the job
      });
      if (response.ok) return true;
      if (response.status < 500 && ![408, 429].includes(response.status)) break; // won't help
    } catch {
      // unreachable or timed out: retry, then give up
    }
    if (attempt + 1 < attempts) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(2 ** attempt, 10) * 1000));
    }
  }
  console.error("ping.js: heartbeat ping failed; the job goes on");
  return false;
}

async function main(argv) {
  if (argv.length === 0) {
    console.error("usage: ping.js COMMAND [ARG...]");
    return 2;
  }
  await ping("/start");
  const result = spawnSync(argv[0], argv.slice(1), { stdio: ["inherit", "pipe", "pipe"] });
  // stdout then stderr (spawnSync keeps them apart); both go to the log and the ping body.
  const output = Buffer.concat([result.stdout ?? Buffer.alloc(0), result.stderr ?? Buffer.alloc(0)]);
  process.stdout.write(output);
  // Like a shell: 127 when the command can't start, 128 + the signal number on a signal.
  let status = result.status;
  if (result.error) {
    console.error(`ping.js: ${result.error.message}`);
    status = 127;
  } else if (status === null) {
    status = 128 + (constants.signals[result.signal] ?? 0);
  }
  await ping(`/${status}`, output.subarray(-BODY_LIMIT));
  return status;
}

module.exports = { ping };

if (require.main === module) {
  main(process.argv.slice(2)).then((status) => process.exit(status));
}
