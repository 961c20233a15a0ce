import fetch from 'node-fetch';
import { UserError, messageOf } from './errors.ts';
import { type BuildLog, silentLog } from './log.ts';

/** Fetch a small JSON or text document (Imager repository JSON, release notes). */
export async function fetchText(url: string, what: string, log: BuildLog = silentLog): Promise<string> {
  log.info(`GET ${url}`);
  let response;
  try {
    response = await fetch(url, { headers: { 'user-agent': 'simplex-pi', accept: 'application/json' }, redirect: 'follow' });
  } catch (error) {
    throw new UserError(`cannot fetch ${what} from ${url}: ${messageOf(error)}`);
  }
  if (!response.ok) throw new UserError(`cannot fetch ${what} from ${url}: HTTP ${response.status}`);
  return response.text();
}
