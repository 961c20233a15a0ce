import { Encrypter } from 'age-encryption';

/**
 * An age X25519 recipient, checked the way the device will use it (bech32 checksum and key length): the recipe's
 * export.encrypt_to and backup.recipient, the device's `backup --recipient`.
 */
export function isAgeRecipient(text: string): boolean {
  // Only X25519 (age1 + 58 bech32 characters): the post-quantum and tag kinds need an age newer than Debian's.
  if (!/^age1[02-9ac-hj-np-z]{58}$/.test(text)) return false;
  try {
    new Encrypter().addRecipient(text);
    return true;
  } catch {
    return false;
  }
}
