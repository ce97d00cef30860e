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
//
// A case with "exceptionsFor" (a request URL) signs nothing: it returns
// ccxt's exceptions tables as they apply to that URL, in the order ccxt's
// handleErrors consults them (Binance's per-market table for the URL's host
// first, then the exchange-wide one), each code or text with the chain of
// its exception class's names up to BaseError.
import { readFileSync } from 'node:fs';
import ccxt from 'ccxt';

const recorded = Symbol('recorded');

// classChain names cls and its ancestors, nearest first.
function classChain(cls) {
    const out = [];
    for (let k = cls; k && k.name && k !== Error; k = Object.getPrototypeOf(k)) {
        out.push(k.name);
    }
    return out;
}

function chains(table) {
    return Object.fromEntries(Object.entries(table || {}).map(([k, v]) => [k, classChain(v)]));
}

// exceptionsFor returns the exact and broad tables ccxt consults for an
// error answer to url, in its order.
function exceptionsFor(ex, url) {
    const exact = [];
    const broad = [];
    if (typeof ex.getExceptionsByUrl === 'function') {
        exact.push(chains(ex.getExceptionsByUrl(url, 'exact')));
        broad.push(chains(ex.getExceptionsByUrl(url, 'broad')));
    }
    exact.push(chains(ex.exceptions.exact));
    broad.push(chains(ex.exceptions.broad));
    return { exact, broad };
}

async function run(c) {
    const Exchange = ccxt[c.exchange];
    if (Exchange === undefined) {
        throw new Error(`ccxt ${ccxt.version} has no exchange ${c.exchange}`);
    }
    if (c.exceptionsFor) {
        return { id: c.id, exceptions: exceptionsFor(new Exchange(), c.exceptionsFor) };
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
