import { describe, expect, it } from 'vitest';
import { HIDDEN, redactPasswords } from '../../builder/device/redact.ts';
import { newServerPassword, serverAddress } from '../../builder/device/address.ts';
import { newOnionKey } from '../../builder/device/onion.ts';
import { REDACTION_CASES } from '../helpers/redaction-cases.ts';

describe('redactPasswords: what the journal may keep of a line with a server address', () => {
  it.each(REDACTION_CASES)('%j', (line, kept) => {
    expect(redactPasswords(line)).toBe(kept);
  });

  it('hides the password of every address the device builds, in an error that quotes several lines', () => {
    const password = newServerPassword();
    const fingerprint = 'u6H0Kb0fpbCRU9Ts0OA7rtJkYcmXB4ajy_2Ko9jBpXg=';
    const onion = newOnionKey().address;
    const address = serverAddress({ scheme: 'smp', fingerprint, password, onion, port: 5223 });
    const error = `smp-server init exited with 1:\nFingerprint: ${fingerprint}\nServer address: ${address}\nError: disk full`;
    const kept = redactPasswords(error);
    expect(kept).not.toContain(password);
    expect(kept).toContain(`smp://${fingerprint}:${HIDDEN}@${onion}`);
    expect(kept.split('\n')).toHaveLength(4);
  });
});
