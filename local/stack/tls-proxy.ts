import { request as httpRequest } from 'node:http';
import { createServer } from 'node:https';
import { generate } from 'selfsigned';
import { closeServer, listen } from './ports.ts';

export interface TlsProxyOptions {
  /** The port on 127.0.0.1. Default 0: a free one. */
  port?: number;
}

export interface TlsProxy {
  /** `https://127.0.0.1:<port>`. */
  readonly url: string;
  readonly port: number;
  /**
   * The proxy's self-signed certificate (PEM): the one certificate a client should trust. Its key
   * never leaves the proxy.
   */
  readonly ca: string;
  close(): Promise<void>;
}

/**
 * A loopback HTTPS front for a plain HTTP server, with a certificate made at start for 127.0.0.1:
 * clients that insist on HTTPS, as Bitrix24's SDKs do, reach the local API through it.
 */
export async function startTlsProxy(target: string, options: TlsProxyOptions = {}): Promise<TlsProxy> {
  // An EC key: made in about 10 ms at every start, where a 2048-bit RSA one takes up to 150.
  const pems = await generate([{ name: 'commonName', value: '127.0.0.1' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] }],
  });
  const upstream = new URL(target);
  const server = createServer({ key: pems.private, cert: pems.cert }, (req, res) => {
    const forward = httpRequest(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on('error', () => {
      res.writeHead(502).end();
    });
    req.pipe(forward);
  });
  const port = await listen(server, options.port ?? 0);
  return {
    url: `https://127.0.0.1:${port}`,
    port,
    ca: pems.cert,
    close: () => closeServer(server),
  };
}
