// contact-gateway as a federation subgraph, proven with two routers. Starts the real binary
// (sandbox mode) and examples/federation's Orders subgraph, composes the supergraph with the
// example's compose.mjs, then for Apollo's gateway and for Hive Gateway in turn:
//   1. a cold gateway: ten orders over four contacts resolve across both subgraphs, and cost
//      four upstream lookups (the simulators' request logs);
//   2. the same query again: no upstream call (the gateway's cache);
//   3. a cold gateway (restarted on the same port) with MaiAgent failing: only the MaiAgent
//      contacts are null, each with a coded error naming the provider; the rest resolve.
// The gateway caches lookups and entity lookups cannot skip the cache, so steps 1 and 3 start
// it anew; the supergraph keeps pointing at it because its port stays.
//
// Usage: node .ci/federation/federation.mjs target/debug/contact-gateway
// Needs examples/federation's packages (`npm ci` there). Exits non-zero, saying why, on any
// failure.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const binary = resolve(process.argv[2] ?? 'target/debug/contact-gateway');
const example = resolve(new URL('../../examples/federation', import.meta.url).pathname);
const QUERY = '{ orders { id total contact { id displayName primaryEmail provider } } }';
const PROVIDERS = ['magicblocks', 'consuelo', 'whautomate', 'maiagent', 'mainbrainer'];
const FAILING = 'maiagent';
// The four contacts of the Orders seed, as the sandbox's simulators hold them (src/sandbox/seed.rs).
const CONTACTS = {
  'magicblocks:con_01HSBX7K2M0000001': ['Olivia Bennett', 'olivia.bennett@northwindtraders.com'],
  'magicblocks:con_01HSBX7K2M0000003': ['Marcus A Reid', 'marcus@reidandco.co.uk'],
  'consuelo:contact_1002': ['James Whitfield', 'james.whitfield@harbourline.co.uk'],
  'maiagent:3b1f8e2a-6c4d-4e7a-9f10-000000000001': ['陳美玲 Chen Mei-Ling', 'meiling.chen@formosatech.com.tw'],
};

const children = new Set();
const temp = mkdtempSync(join(tmpdir(), 'federation-'));
const watchdog = setTimeout(() => fail(new Error('the check took over 110 s')), 110_000);

async function fail(error) {
  console.error(`federation: FAILED: ${error.message}`);
  for (const child of children) {
    if (child.output.trim()) console.error(`--- ${child.label}, last output:\n${child.output.slice(-2000)}`);
  }
  await stopAll();
  process.exit(1);
}

async function stopAll() {
  await Promise.all([...children].map(stop));
  rmSync(temp, { recursive: true, force: true });
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function freePort() {
  const server = createServer();
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address();
  await new Promise((ok) => server.close(ok));
  return port;
}

/** Starts a process; resolves once its output matches `ready` (with the match). */
function start(label, command, args, ready, timeoutMs = 20_000) {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  child.label = label;
  child.output = '';
  children.add(child);
  child.on('exit', () => children.delete(child));
  return new Promise((ok, no) => {
    const timer = setTimeout(() => no(new Error(`${label} did not start within ${timeoutMs} ms`)), timeoutMs);
    const read = (chunk) => {
      child.output += chunk;
      const match = child.output.match(ready);
      if (match) {
        clearTimeout(timer);
        ok({ child, match });
      }
    };
    child.stdout.setEncoding('utf8').on('data', read);
    child.stderr.setEncoding('utf8').on('data', read);
    child.on('exit', (code) => {
      clearTimeout(timer);
      no(new Error(`${label} exited (${code}) before it was ready`));
    });
  });
}

function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((ok) => {
    child.on('exit', ok);
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 5000).unref();
  });
}

/** The gateway on `port`, with the simulator URLs from its banner. */
async function startGateway(port) {
  // The port was just freed by the previous gateway: retry a moment if it is still held.
  for (let attempt = 1; ; attempt++) {
    try {
      const { child } = await start('contact-gateway', binary, ['serve', '--listen', `127.0.0.1:${port}`],
        /make one misbehave/);
      const url = child.output.match(/^\s*GraphQL:\s*(\S+)/m)?.[1];
      const sims = {};
      for (const provider of PROVIDERS) {
        sims[provider] = child.output.match(new RegExp(`^\\s*${provider}\\s+(http\\S+)`, 'm'))?.[1];
        check(sims[provider], `no ${provider} simulator URL in the banner`);
      }
      check(url === `http://127.0.0.1:${port}/graphql`, `unexpected GraphQL URL ${url}`);
      return { child, url, sims };
    } catch (error) {
      if (attempt === 5) throw error;
      await new Promise((ok) => setTimeout(ok, 300));
    }
  }
}

async function post(url, query) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ query }),
  });
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`${url} answered ${response.status} with ${text.slice(0, 300)}`);
  }
}

async function waitReady(url, label) {
  for (let i = 0; i < 200; i++) {
    try {
      const body = await post(url, '{ __typename }');
      if (body.data?.__typename === 'Query') return;
    } catch {}
    await new Promise((ok) => setTimeout(ok, 100));
  }
  throw new Error(`${label} did not answer { __typename } at ${url}`);
}

async function sandbox(sims, provider, method, route, body) {
  const response = await fetch(`${sims[provider]}/__sandbox/${route}`, { method, body });
  check(response.ok, `${method} ${provider} /__sandbox/${route}: HTTP ${response.status}`);
  return response.status === 204 ? null : response.json();
}

/** Upstream requests per provider since the last reset, as [method path] lines. */
async function upstream(sims) {
  const calls = {};
  for (const provider of PROVIDERS) {
    calls[provider] = (await sandbox(sims, provider, 'GET', 'requests')).map((r) => `${r.method} ${r.path}`);
  }
  return calls;
}

async function resetLogs(sims) {
  for (const provider of PROVIDERS) await sandbox(sims, provider, 'DELETE', 'requests');
}

const providerOf = (id) => id.slice(0, id.indexOf(':'));
const nativeOf = (id) => id.slice(id.indexOf(':') + 1);

function checkContact(contact, id, where) {
  const [displayName, primaryEmail] = CONTACTS[id];
  const want = { id, displayName, primaryEmail, provider: providerOf(id).toUpperCase() };
  check(JSON.stringify(contact) === JSON.stringify(want),
    `${where}: contact ${JSON.stringify(contact)}, expected ${JSON.stringify(want)}`);
}

/** The router's orders against the Orders subgraph's own: same ids, totals and contact ids. */
function checkOrders(body, truth, label) {
  const orders = body.data?.orders;
  check(Array.isArray(orders) && orders.length === truth.length,
    `${label}: expected ${truth.length} orders, got ${JSON.stringify(body).slice(0, 500)}`);
  orders.forEach((order, i) => {
    check(order.id === truth[i].id && order.total === truth[i].total,
      `${label}: order ${i} is ${JSON.stringify(order)}, the Orders subgraph says ${JSON.stringify(truth[i])}`);
  });
  return orders;
}

async function run() {
  const gatewayPort = await freePort();
  let gateway = await startGateway(gatewayPort);
  console.log(`federation: contact-gateway (sandbox) at ${gateway.url}`);

  const { match: orders } = await start('orders', process.execPath, [join(example, 'orders.mjs'), '--port', '0'],
    /Orders: (\S+)/);
  const ordersUrl = orders[1];
  console.log(`federation: Orders subgraph at ${ordersUrl}`);
  const truth = (await post(ordersUrl, '{ orders { id total contact { id } } }')).data.orders;
  const contactIds = [...new Set(truth.map((o) => o.contact.id))];
  check(truth.length === 10 && contactIds.length === 4,
    `the Orders subgraph should serve ten orders over four contacts: ${JSON.stringify(truth)}`);
  check(contactIds.every((id) => CONTACTS[id]), `unknown contacts in the Orders seed: ${contactIds}`);
  check(contactIds.some((id) => providerOf(id) === FAILING), `no ${FAILING} contact in the Orders seed`);

  // The gateway's SDL as the binary prints it, composed with the Orders SDL.
  const sdl = join(temp, 'contacts.graphql');
  const supergraph = join(temp, 'supergraph.graphql');
  writeFileSync(sdl, execFileSync(binary, ['schema']));
  execFileSync(process.execPath, [join(example, 'compose.mjs'), '--contacts-sdl', sdl,
    '--contacts-url', gateway.url, '--orders-url', ordersUrl, '--out', supergraph], { stdio: 'inherit' });

  const routers = [
    {
      name: "Apollo's gateway (@apollo/gateway + @apollo/server)",
      start: async () => {
        const { child, match } = await start('apollo-gateway', process.execPath,
          [join(example, 'apollo-gateway.mjs'), '--supergraph', supergraph, '--port', '0'],
          /Apollo gateway: (\S+)/);
        return { child, url: match[1] };
      },
    },
    {
      name: 'Hive Gateway (@graphql-hive/gateway CLI)',
      start: async () => {
        const port = await freePort();
        const { child } = await start('hive-gateway', join(example, 'node_modules/.bin/hive-gateway'),
          ['supergraph', supergraph, '--host', '127.0.0.1', '--port', String(port)], /Listening on/);
        return { child, url: `http://127.0.0.1:${port}/graphql` };
      },
    },
  ];

  for (const [n, router] of routers.entries()) {
    const { child, url } = await router.start();
    await waitReady(url, router.name);
    console.log(`federation: ${router.name} at ${url}`);
    if (n > 0) {
      await stop(gateway.child);
      gateway = await startGateway(gatewayPort);
    }

    // 1. Cold: every contact resolves; one upstream lookup per distinct contact.
    await resetLogs(gateway.sims);
    const cold = await post(url, QUERY);
    check(!cold.errors, `${router.name}: errors ${JSON.stringify(cold.errors)}`);
    checkOrders(cold, truth, router.name).forEach((order, i) =>
      checkContact(order.contact, truth[i].contact.id, `${router.name}, ${order.id}`));
    const calls = await upstream(gateway.sims);
    const total = Object.values(calls).flat().length;
    check(total === contactIds.length,
      `${router.name}: ${truth.length} orders over ${contactIds.length} contacts cost ${total} upstream calls: ${JSON.stringify(calls)}`);
    for (const id of contactIds) {
      const asked = calls[providerOf(id)].filter((line) => line.includes(nativeOf(id))).length;
      check(asked === 1, `${router.name}: ${id} was asked upstream ${asked} times: ${JSON.stringify(calls)}`);
    }
    console.log(`federation: ${router.name}: ${truth.length} orders over ${contactIds.length} contacts, cold: ${total} upstream lookups`);

    // 2. Warm: the gateway's cache answers.
    await resetLogs(gateway.sims);
    const warm = await post(url, QUERY);
    check(JSON.stringify(warm) === JSON.stringify(cold), `${router.name}: the warm answer differs from the cold one`);
    const warmCalls = Object.values(await upstream(gateway.sims)).flat().length;
    check(warmCalls === 0, `${router.name}: the warm query made ${warmCalls} upstream calls`);
    console.log(`federation: ${router.name}: warm: 0 upstream lookups`);

    // 3. A cold gateway with one provider failing: only its contacts are null, with coded errors.
    await stop(gateway.child);
    gateway = await startGateway(gatewayPort);
    await sandbox(gateway.sims, FAILING, 'PUT', 'fault', '{"status":500}');
    const faulted = await post(url, QUERY);
    const failing = [];
    checkOrders(faulted, truth, `${router.name} with ${FAILING} failing`).forEach((order, i) => {
      const id = truth[i].contact.id;
      if (providerOf(id) === FAILING) {
        check(order.contact === null, `${router.name}: ${order.id}'s ${FAILING} contact should be null: ${JSON.stringify(order)}`);
        failing.push(i);
      } else {
        checkContact(order.contact, id, `${router.name} with ${FAILING} failing, ${order.id}`);
      }
    });
    const errors = faulted.errors ?? [];
    for (const error of errors) {
      check(error.extensions?.code, `${router.name}: an error without extensions.code: ${JSON.stringify(error)}`);
      check(error.extensions?.provider === FAILING.toUpperCase(),
        `${router.name}: an error not naming ${FAILING.toUpperCase()}: ${JSON.stringify(error)}`);
      const [root, index, field] = error.path ?? [];
      check(root === 'orders' && failing.includes(index) && field === 'contact',
        `${router.name}: an error at ${JSON.stringify(error.path)}, not at a ${FAILING} order's contact`);
    }
    for (const i of failing) {
      check(errors.some((e) => e.path?.[1] === i),
        `${router.name}: no error for ${truth[i].id}'s contact: ${JSON.stringify(errors)}`);
    }
    const codes = [...new Set(errors.map((e) => e.extensions.code))].join(', ');
    console.log(`federation: ${router.name}: ${FAILING} failing: ${failing.length} contacts null with errors (${codes}, provider ${FAILING.toUpperCase()}), ${truth.length - failing.length} resolved`);

    await sandbox(gateway.sims, FAILING, 'PUT', 'fault', 'null');
    await stop(child);
  }
  console.log(`federation: ok, ${routers.length} routers`);
}

process.on('SIGINT', () => fail(new Error('interrupted')));
process.on('SIGTERM', () => fail(new Error('terminated')));
try {
  await run();
} catch (error) {
  await fail(error);
}
clearTimeout(watchdog);
await stopAll();
