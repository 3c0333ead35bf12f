// Checkout (the payment saga) on distinct users and products. Seed (결제 처리): never paid twice
// (idempotency), rolled back on failure (saga); p95 < 500 ms, TPS > 100, availability > 99.9%.
//
// setup: PRODUCTS products and USERS fresh users with POINTS each. Load: RATE orders/s
// (POST /v1/orders, a fresh Idempotency-Key each), order i by user i % USERS of product
// i % PRODUCTS, so orders in flight share no row. Every REPLAY_EVERY-th order is sent again
// with its key after its answer: same order, `Idempotent-Replayed: true`. teardown: once every
// order settled, stock and points balance with the COMPLETED orders (nobody paid twice).

import http from 'k6/http';
import exec from 'k6/execution';
import { check } from 'k6';
import { Counter } from 'k6/metrics';
import { BASE_URL, chargeUsers, createProducts, field, freshUsers, intEnv, openLoop, params, runId, verifyOrders } from './lib.js';

const load = openLoop('checkout', { rate: 100, p95Ms: 500 });
const USERS = intEnv('USERS', Math.min(1000, load.planned));
const PRODUCTS = intEnv('PRODUCTS', Math.min(1000, load.planned));
const STOCK = intEnv('STOCK', 1000);
const PRICE = 1000;
const POINTS = intEnv('POINTS', 10_000_000);
const REPLAY_EVERY = intEnv('REPLAY_EVERY', 10);

const completed = new Counter('orders_completed');
const pending = new Counter('orders_pending');
const rejected = new Counter('orders_rejected');
const replays = new Counter('orders_replayed');

http.setResponseCallback(http.expectedStatuses({ min: 200, max: 299 }, 409));

export const options = {
  scenarios: load.scenario,
  setupTimeout: '120s',
  teardownTimeout: '120s',
  thresholds: {
    'http_req_duration{endpoint:order}': [`p(95)<${load.p95Ms}`],
    // Availability > 99.9%: business answers (409) are not failures, 5xx and 404 are.
    http_req_failed: [`rate<${__ENV.MAX_FAILED || 0.001}`],
    dropped_iterations: load.dropped,
    checks: ['rate==1'],
    // Distinct rows, enough stock and points: every order should go through.
    orders_rejected: ['count==0'],
  },
};

export function setup() {
  const products = createProducts(PRODUCTS, { price: PRICE, stock: STOCK, label: 'checkout' });
  const userBase = freshUsers(USERS);
  const users = Array.from({ length: USERS }, (_, i) => userBase + i);
  const run = runId();
  chargeUsers(users, POINTS, run);
  return { products, users, run };
}

export default function (data) {
  const i = exec.scenario.iterationInTest;
  const user = data.users[i % USERS];
  const body = JSON.stringify({ userId: user, items: [{ productId: data.products[i % PRODUCTS], quantity: 1 }] });
  const key = { 'Idempotency-Key': `k6-pay-${data.run}-${i}` };
  const res = http.post(`${BASE_URL}/v1/orders`, body, params('order', key, user));
  if (res.status === 201) {
    completed.add(1);
    check(res, { 'order: 201 is COMPLETED, paid in full': (r) => field(r, 'status') === 'COMPLETED' && field(r, 'paidAmount') === PRICE });
  } else if (res.status === 202) {
    pending.add(1);
    check(res, { 'order: 202 is PENDING with Location': (r) => field(r, 'status') === 'PENDING' && !!r.headers.Location });
  } else if (res.status === 409) {
    rejected.add(1, { code: String(field(res, 'code')) });
  }
  if (REPLAY_EVERY > 0 && i % REPLAY_EVERY === 0 && res.status !== 0) {
    const again = http.post(`${BASE_URL}/v1/orders`, body, params('replay', key, user));
    replays.add(1);
    // A pending order answers 202 again until it settles; a settled one replays its answer.
    const settled = res.status !== 202 && again.status !== 202;
    check(again, {
      'replay: same order': (r) => field(r, 'orderId') === field(res, 'orderId'),
      'replay: same answer, Idempotent-Replayed: true': (r) =>
        !settled || (r.status === res.status && r.headers['Idempotent-Replayed'] === 'true'),
    });
  }
}

export function teardown(data) {
  verifyOrders({ users: data.users, products: data.products, stock: STOCK, points: POINTS, settleSecs: intEnv('SETTLE_SECS', 30) });
}
