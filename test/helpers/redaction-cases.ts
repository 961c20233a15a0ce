/**
 * Lines as the relays and the device program write them, and what the journal may keep of each: the device
 * program's redactPasswords (test/unit/redact.test.ts) and the relay units' sed (test/integration/redact-passwords.test.ts)
 * must both give these answers.
 */
export const REDACTION_CASES: Array<[line: string, kept: string]> = [
  // smp-server start and init (facts §5): the fingerprint and the host stay.
  ['Server address: smp://u6H0Kb0fpbCRU9Ts0OA7rtJkYcmXB4ajy_2Ko9jBpXg=:6yWhQIxnC_MWz1S2mSmb5d-WmSNP-N6ugbPjC2Mgk0k=@abc.onion:5301', 'Server address: smp://u6H0Kb0fpbCRU9Ts0OA7rtJkYcmXB4ajy_2Ko9jBpXg=:<hidden>@abc.onion:5301'],
  ['Server address: smp://fp:pw@<hostnames>', 'Server address: smp://fp:<hidden>@<hostnames>'],
  ['Server address: xftp://fp:pw@h1.onion,h2.onion:443', 'Server address: xftp://fp:<hidden>@h1.onion,h2.onion:443'],
  // Two in one line, an empty password.
  ['smp://a:b@c and smp://d:@e', 'smp://a:<hidden>@c and smp://d:<hidden>@e'],
  // No password: nothing to hide.
  ['Server address: smp://fp@abc.onion', 'Server address: smp://fp@abc.onion'],
  ['Server address: xftp://fp@abc.onion:5443', 'Server address: xftp://fp@abc.onion:5443'],
  ['Fingerprint: u6H0Kb0fpbCRU9Ts0OA7rtJkYcmXB4ajy_2Ko9jBpXg=', 'Fingerprint: u6H0Kb0fpbCRU9Ts0OA7rtJkYcmXB4ajy_2Ko9jBpXg='],
  // A port is not a password, and a path ends the user part.
  ['see http://example.org:80/path or mail me@example.org', 'see http://example.org:80/path or mail me@example.org'],
  ['socks5://user:secret@192.0.2.1:1080', 'socks5://user:<hidden>@192.0.2.1:1080'],
  // More than enough is hidden where a URL is odd, never too little.
  ['https://host:443/a@b', 'https://host:<hidden>@b'],
  ['creating new queues requires password', 'creating new queues requires password'],
  ['', ''],
];
