// Opens GraphiQL from the gateway in headless Chromium, runs the default query, checks the
// result pane, runs a subscription (over the gateway's WebSocket) and sees a write made
// meanwhile arrive, and fails if the page asked any host but the gateway's loopback address.
// Usage: node graphiql.mjs http://127.0.0.1:PORT/graphql
import { chromium } from 'playwright-core';

const url = process.argv[2];
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox'],
});
const outside = [];
try {
  const page = await browser.newPage();
  page.on('request', (request) => {
    const host = new URL(request.url()).hostname;
    if (!['127.0.0.1', 'localhost', '[::1]'].includes(host) && !request.url().startsWith('data:')) {
      outside.push(request.url());
    }
  });
  await page.goto(url, { waitUntil: 'load' });
  await page.waitForSelector('.graphiql-execute-button', { timeout: 20000 });
  await page.click('.graphiql-execute-button');
  await page.waitForFunction(
    () => (document.querySelector('.result-window')?.textContent || '').includes('"data"'),
    null,
    { timeout: 20000 },
  );
  // The whole answer, not the lines CodeMirror happens to render (`contacts` follows the
  // long `providers` list: the answer's keys are in the query's order).
  const result = await page.evaluate(
    () => document.querySelector('.result-window .CodeMirror').CodeMirror.getValue(),
  );
  if (!result.includes('"contacts"') || !result.includes('"displayName"')) {
    throw new Error(`the result pane lacks the contacts: ${result.slice(0, 300)}`);
  }
  // A subscription: GraphiQL opens a WebSocket to /graphql; a write made now shows up.
  await page.evaluate(() => {
    document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror
      .setValue('subscription { contactChanged { kind id contact { company } } }');
  });
  await page.waitForTimeout(500);
  await page.click('.graphiql-execute-button');
  const company = `Seen in GraphiQL ${Date.now()}`;
  const mutation = `mutation { updateContact(id: "consuelo:contact_1002", input: { company: "${company}" }) { contact { id } } }`;
  // The subscription registers a moment after it is sent: write until a change shows.
  let seen = false;
  for (let attempt = 0; attempt < 10 && !seen; attempt++) {
    await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: mutation }) });
    seen = await page
      .waitForFunction((c) => (document.querySelector('.result-window')?.textContent || '').includes(c), company, { timeout: 2000 })
      .then(() => true, () => false);
  }
  if (!seen) {
    throw new Error(`the subscription showed no change: ${(await page.textContent('.result-window')).slice(0, 300)}`);
  }
  if (outside.length) {
    throw new Error(`the page asked other hosts: ${outside.join(', ')}`);
  }
  console.log('GraphiQL: the page loaded offline, ran the query and showed its result, and a subscription showed a write');
} finally {
  await browser.close();
}
