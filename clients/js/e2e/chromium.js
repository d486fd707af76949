// Starts the headless Chromium the end-to-end tests drive. Chromium comes from Debian
// (`apt-get install chromium`, done by `cargo xtask test`), never downloaded:
// CHROMIUM_PATH overrides /usr/bin/chromium. Playwright starts it on a fresh temporary
// profile. Background networking is off because nothing but loopback is reachable
// (Chromium would keep trying Google's hosts otherwise).
import { chromium } from 'playwright-core';

/** @returns {Promise<import('playwright-core').Browser>} */
export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
