// Opens GraphiQL from the gateway in headless Chromium, runs the default query, checks the
// result pane, and fails if the page asked any host but the gateway's loopback address.
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
  const result = await page.textContent('.result-window');
  if (!result.includes('"contacts"') || !result.includes('"displayName"')) {
    throw new Error(`the result pane lacks the contacts: ${result.slice(0, 300)}`);
  }
  if (outside.length) {
    throw new Error(`the page asked other hosts: ${outside.join(', ')}`);
  }
  console.log('GraphiQL: the page loaded offline, ran the query and showed its result');
} finally {
  await browser.close();
}
