// Stock deduction on one hot product through checkout. Seed (재고 관리): never oversold, never
// negative, restored on failure; p95 < 100 ms, TPS > 1,000, 1,000 concurrent users.
//
// setup: one product with STOCK units (POST /v1/products) and USERS fresh users with POINTS
// each (POST /v1/points/charge). Load: RATE orders/s (POST /v1/orders, a fresh
// Idempotency-Key each) of QTY units, order i by user i % USERS. teardown: once every order
// settled, stock now + units of COMPLETED orders == STOCK, and points balance.

import http from 'k6/http';
import exec from 'k6/execution';
import { check } from 'k6';
import { Counter } from 'k6/metrics';
import { BASE_URL, chargeUsers, createProducts, field, freshUsers, intEnv, openLoop, params, runId, verifyOrders } from './lib.js';

const load = openLoop('orders_hot_product', { rate: 1000, p95Ms: 100 });
const USERS = intEnv('USERS', 1000);
const STOCK = intEnv('STOCK', 1_000_000);
const QTY = intEnv('QTY', 1);
const PRICE = 1000;
const POINTS = intEnv('POINTS', 10_000_000);

const completed = new Counter('orders_completed');
const pending = new Counter('orders_pending');
const outOfStock = new Counter('orders_out_of_stock');
const rejected = new Counter('orders_rejected_other');

http.setResponseCallback(http.expectedStatuses({ min: 200, max: 299 }, 409));

export const options = {
  scenarios: load.scenario,
  setupTimeout: '120s',
  teardownTimeout: '120s',
  thresholds: {
    'http_req_duration{endpoint:order}': [`p(95)<${load.p95Ms}`],
    http_req_failed: [`rate<${__ENV.MAX_FAILED || 0.01}`],
    dropped_iterations: load.dropped,
    checks: ['rate==1'],
    // Enough points for everyone: the only business rejection is OUT_OF_STOCK.
    orders_rejected_other: ['count==0'],
  },
};

export function setup() {
  const [product] = createProducts(1, { price: PRICE, stock: STOCK, label: 'hot product' });
  const userBase = freshUsers(USERS);
  const users = Array.from({ length: USERS }, (_, i) => userBase + i);
  const run = runId();
  chargeUsers(users, POINTS, run);
  return { product, users, run };
}

export default function (data) {
  const i = exec.scenario.iterationInTest;
  const user = data.users[i % USERS];
  const body = { userId: user, items: [{ productId: data.product, quantity: QTY }] };
  const res = http.post(`${BASE_URL}/v1/orders`, JSON.stringify(body),
    params('order', { 'Idempotency-Key': `k6-hot-${data.run}-${i}` }, user));
  if (res.status === 201) {
    completed.add(1);
    check(res, { 'order: 201 is COMPLETED': (r) => field(r, 'status') === 'COMPLETED' });
  } else if (res.status === 202) {
    pending.add(1);
    check(res, { 'order: 202 is PENDING with Location': (r) => field(r, 'status') === 'PENDING' && !!r.headers.Location });
  } else if (res.status === 409) {
    const answer = field(res, 'code');
    if (answer === 'OUT_OF_STOCK') outOfStock.add(1);
    else rejected.add(1, { code: String(answer) });
  }
}

export function teardown(data) {
  const { failed, after } = verifyOrders({
    users: data.users, products: [data.product], stock: STOCK, points: POINTS, settleSecs: intEnv('SETTLE_SECS', 30),
  });
  // Sold out exactly: an OUT_OF_STOCK only once fewer than QTY units were left.
  const others = Object.keys(failed).filter((c) => c !== 'OUT_OF_STOCK').length;
  if (failed.OUT_OF_STOCK && others === 0) {
    check(after[0], { 'verify: OUT_OF_STOCK only once sold out': (left) => left < QTY });
  }
}
