// sign.js: ccxt as an oracle for the Go drivers' request signing.
//
// Reads a JSON array of cases on stdin and prints, for each, the request
// ccxt would send: {id, url, method, headers, body}. Nothing is sent: the
// instance's fetch is replaced by a recorder, and every source of time or
// randomness ccxt uses while signing (milliseconds, seconds, uuid,
// randomBytes) is fixed to the case's values, so that the Go side can sign
// the same request with the same inputs and compare byte for byte.
//
// A case either names ccxt's own implicit API method for the probe endpoint
// ("call", e.g. "sapiGetAccountApiRestrictions"), which runs ccxt's full
// request path (fetch2 -> sign -> fetch), or gives sign()'s inputs directly
// ("sign": {path, api, method, params}) for a variant ccxt would not build by
// itself. Run by ../../ccxt_conformance_test.go; see it for the cases.
import { readFileSync } from 'node:fs';
import ccxt from 'ccxt';

const recorded = Symbol('recorded');

async function run(c) {
    const Exchange = ccxt[c.exchange];
    if (Exchange === undefined) {
        throw new Error(`ccxt ${ccxt.version} has no exchange ${c.exchange}`);
    }
    const ex = new Exchange({
        apiKey: c.apiKey,
        secret: c.secret,
        password: c.password,
        // The throttler has its own clock; nothing is sent anyway.
        enableRateLimit: false,
        options: c.options || {},
    });
    ex.milliseconds = () => c.ms;
    ex.seconds = () => Math.floor(c.ms / 1000);
    ex.microseconds = () => c.ms * 1000;
    ex.uuid = () => c.uuid;
    ex.randomBytes = (n) => c.randomHex.slice(0, 2 * n);
    let req;
    if (c.call) {
        if (typeof ex[c.call] !== 'function') {
            throw new Error(`ccxt ${ccxt.version} ${c.exchange} has no method ${c.call}`);
        }
        ex.fetch = async (url, method, headers, body) => {
            req = { url, method, headers, body };
            throw recorded;
        };
        try {
            await ex[c.call](c.params || {});
        } catch (e) {
            if (e !== recorded) {
                throw e;
            }
        }
    } else {
        const s = c.sign;
        // methodObject: pass the method as a String object. It concatenates
        // as the same text but fails ccxt's `method === 'POST'` tests, which
        // is how the Bitstamp case reaches ccxt's signing formula without
        // the dummy body ccxt adds to every empty POST.
        const method = s.methodObject ? new String(s.method) : s.method;
        req = ex.sign(s.path, s.api, method, s.params || {});
    }
    return {
        id: c.id,
        url: req.url,
        method: String(req.method),
        headers: Object.fromEntries(Object.entries(req.headers || {}).map(([k, v]) => [k, String(v)])),
        body: req.body === undefined || req.body === null ? null : String(req.body),
    };
}

const cases = JSON.parse(readFileSync(0, 'utf8'));
const out = { results: [] };
for (const c of cases) {
    try {
        out.results.push(await run(c));
    } catch (e) {
        out.results.push({ id: c.id, error: String(e && e.message ? e.message : e) });
    }
}
process.stdout.write(JSON.stringify(out));
