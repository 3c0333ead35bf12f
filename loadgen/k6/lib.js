// Shared by the k6 scripts: env knobs, the open-loop scenario, request helpers, and the
// set-up and read-back through the public API (../../../shared/API.md).

import http from 'k6/http';
import { check, fail, sleep } from 'k6';
import { SharedArray } from 'k6/data';
import encoding from 'k6/encoding';

export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');

export function intEnv(name, fallback) {
  const raw = __ENV[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) throw new Error(`${name}=${raw}: expected a whole number >= 0`);
  return value;
}

/** Seconds in a k6 duration such as `20s`, `1m30s`, `500ms`. */
export function seconds(duration) {
  const units = { ms: 0.001, s: 1, m: 60, h: 3600 };
  let total = 0;
  let rest = String(duration);
  const part = /^(\d+(?:\.\d+)?)(ms|s|m|h)/;
  while (rest.length > 0) {
    const found = part.exec(rest);
    if (!found) throw new Error(`DURATION=${duration}: expected e.g. 20s, 1m30s, 500ms`);
    total += Number(found[1]) * units[found[2]];
    rest = rest.slice(found[0].length);
  }
  return total;
}

/**
 * The open-loop load: RATE requests/s for DURATION, whatever the latency (k6's
 * constant-arrival-rate; latency counts from when each request was due). PRE_VUS defaults to
 * the VUs in flight at four times the latency budget (VUs made mid-run cost k6 time, and it
 * drops iterations meanwhile), MAX_VUS to four times that; past MAX_VUS k6 drops iterations,
 * which the `dropped_iterations` threshold turns into a failed run.
 */
export function openLoop(name, { rate, p95Ms }) {
  const RATE = intEnv('RATE', rate);
  const DURATION = __ENV.DURATION || '20s';
  const pre = intEnv('PRE_VUS', Math.max(10, Math.ceil((RATE * p95Ms * 4) / 1000)));
  const max = Math.max(pre, intEnv('MAX_VUS', Math.max(100, pre * 4)));
  const planned = Math.floor(RATE * seconds(DURATION));
  if (RATE < 1 || planned < 1) throw new Error(`RATE=${RATE} for DURATION=${DURATION} plans no request`);
  return {
    rate: RATE,
    duration: DURATION,
    planned,
    p95Ms: intEnv('P95_MS', p95Ms),
    scenario: {
      [name]: {
        executor: 'constant-arrival-rate',
        rate: RATE,
        timeUnit: '1s',
        duration: DURATION,
        preAllocatedVUs: pre,
        maxVUs: max,
      },
    },
    // Open loop: the offered rate is the throughput unless k6 ran out of VUs (the system
    // fell behind); at most 1% of the planned requests may be dropped.
    dropped: [`count<=${Math.floor(planned * 0.01)}`],
  };
}

/**
 * TOKENS: a file of one JWT a line for consecutive users (`devstack token --user B --count N`),
 * loaded once and shared by every VU. The measured requests then carry their own user's
 * token, as real clients do: the gateway verifies each user's token and rate-limits per user.
 */
const TOKENS = __ENV.TOKENS
  ? new SharedArray('tokens', () => open(__ENV.TOKENS).split('\n').map((l) => l.trim()).filter((l) => l !== ''))
  : null;

/** The `sub` of a JWT (no verification: the gateway does that). */
function subject(token) {
  const payload = JSON.parse(encoding.b64decode(token.split('.')[1], 'rawurl', 's'));
  return Number(payload.sub);
}

/** The user of the file's first token; the others follow in order. */
const TOKENS_FIRST_USER = TOKENS ? subject(TOKENS[0]) : undefined;

/**
 * JSON headers and a bearer token: `user`'s own from TOKENS when both are there, else TOKEN
 * when set (an admin token acts for every user: set-up, read-back, or every request).
 */
export function headers(extra, user) {
  const all = { 'Content-Type': 'application/json' };
  if (TOKENS && user !== undefined) all.Authorization = `Bearer ${userToken(user)}`;
  else if (__ENV.TOKEN) all.Authorization = `Bearer ${__ENV.TOKEN}`;
  return Object.assign(all, extra || {});
}

function userToken(user) {
  const token = TOKENS[user - TOKENS_FIRST_USER];
  if (token === undefined) fail(`TOKENS has no token for user ${user}`);
  return token;
}

/** Request params; `user` picks that user's token from TOKENS. */
export function params(tag, extra, user) {
  return { headers: headers(extra, user), tags: { endpoint: tag, name: tag } };
}

/**
 * `count` users no earlier run has: their balances and orders are this run's only. With
 * TOKENS, the file's users (minted fresh for the run), which must be enough.
 */
export function freshUsers(count) {
  if (TOKENS) {
    if (TOKENS.length < count) fail(`TOKENS holds ${TOKENS.length} tokens; this run needs ${count} users`);
    return TOKENS_FIRST_USER;
  }
  return intEnv('USER_BASE', 1_000_000_000 + Math.floor(Math.random() * 2 ** 40));
}

export function runId() {
  return `${Date.now().toString(36)}-${Math.floor(Math.random() * 2 ** 32).toString(36)}`;
}

/** A field of a JSON answer; undefined if the body is not JSON. */
export function field(res, name) {
  try {
    return res.json(name);
  } catch (_) {
    return undefined;
  }
}

/** Sends `requests` (k6 batch form) in chunks, each until it gets one of `ok`, 5 tries. */
export function batchUntil(requests, ok, chunk = 50) {
  const answers = new Array(requests.length);
  for (let start = 0; start < requests.length; start += chunk) {
    let todo = requests.slice(start, start + chunk).map((req, i) => [start + i, req]);
    for (let attempt = 1; todo.length > 0; attempt++) {
      const got = http.batch(todo.map(([, req]) => req));
      const again = [];
      got.forEach((res, i) => {
        if (ok.includes(res.status)) answers[todo[i][0]] = res;
        else if (attempt >= 5) fail(`${todo[i][1][0]} ${todo[i][1][1]}: ${res.status} ${res.body}`);
        else again.push(todo[i]);
      });
      todo = again;
      if (todo.length > 0) sleep(0.2 * attempt);
    }
  }
  return answers;
}

export function post(path, body, tag, extra) {
  return ['POST', `${BASE_URL}${path}`, JSON.stringify(body), params(tag, extra)];
}

export function get(path, tag) {
  return ['GET', `${BASE_URL}${path}`, null, params(tag)];
}

/** Products of `price` with `stock` units each; their ids. */
export function createProducts(count, { price, stock, label }) {
  const made = batchUntil(
    Array.from({ length: count }, (_, i) =>
      post('/v1/products', { name: `k6 ${label} ${i}`, price, stock }, 'setup')),
    [201],
  );
  return made.map((res) => res.json('id'));
}

/** Charges `points` to each user, one Idempotency-Key per user and run (a retry is one charge). */
export function chargeUsers(users, points, run) {
  batchUntil(
    users.map((user) => post('/v1/points/charge', { userId: user, amount: points }, 'setup',
      { 'Idempotency-Key': `k6-charge-${run}-${user}` })),
    [200],
  );
}

const SETTLED = ['COMPLETED', 'FAILED', 'CANCELLED'];

/**
 * Reads the run back through the API once every order has settled (its users are fresh,
 * so all their orders are this run's): no order left PENDING; for every product, stock now
 * + units of COMPLETED orders == stock before (no oversell, nothing lost); for every user,
 * points charged - balance now == paidAmount of its COMPLETED orders (no double payment).
 * Failed invariants are failed checks (the `checks` threshold fails the run).
 */
export function verifyOrders({ users, products, stock, points, settleSecs }) {
  const limit = 100;
  const deadline = Date.now() + settleSecs * 1000;
  let lists;
  let pending;
  for (;;) {
    lists = batchUntil(users.map((u) => get(`/v1/users/${u}/orders?limit=${limit}`, 'verify')), [200])
      .map((res) => res.json('items'));
    pending = lists.reduce((n, items) => n + items.filter((o) => !SETTLED.includes(o.status)).length, 0);
    if (pending === 0 || Date.now() > deadline) break;
    sleep(1);
  }
  const units = {};
  const paid = {};
  const failed = {};
  let completed = 0;
  let truncated = 0;
  lists.forEach((items, i) => {
    if (items.length >= limit) truncated++;
    paid[users[i]] = 0;
    for (const order of items) {
      if (order.status === 'COMPLETED') {
        completed++;
        paid[users[i]] += order.paidAmount;
        for (const line of order.items) units[line.productId] = (units[line.productId] || 0) + line.quantity;
      } else if (order.status === 'FAILED') {
        failed[order.failureCode] = (failed[order.failureCode] || 0) + 1;
      }
    }
  });
  const after = batchUntil(products.map((id) => get(`/v1/products/${id}`, 'verify')), [200]).map((r) => r.json('stock'));
  const balances = batchUntil(users.map((u) => get(`/v1/points/${u}`, 'verify')), [200]).map((r) => r.json('balance'));
  const stockOff = products.filter((id, i) => after[i] < 0 || after[i] + (units[id] || 0) !== stock);
  const pointsOff = users.filter((u, i) => points - balances[i] !== paid[u]);
  check(pending, { 'verify: no order left PENDING': (n) => n === 0 });
  check(truncated, { 'verify: every user listed in full (< 100 orders each; raise USERS)': (n) => n === 0 });
  check(stockOff, { 'verify: stock now + units COMPLETED == stock before, never < 0': (off) => off.length === 0 });
  check(pointsOff, { 'verify: points charged - balance == paidAmount of COMPLETED': (off) => off.length === 0 });
  const report = { completed, failed, pending, stockOff: stockOff.slice(0, 5), pointsOff: pointsOff.slice(0, 5) };
  console.log(`verify: ${JSON.stringify(report)}; stock after: ${JSON.stringify(after.slice(0, 5))}`);
  return { completed, failed, after };
}
