import { execFileSync } from 'node:child_process';
import jsQRModule from 'jsqr';
import { PNG } from 'pngjs';

const MTOOLS = { ...process.env, MTOOLS_SKIP_CHECK: '1' };

/** jsqr is CommonJS with a default export in its types; under NodeNext the function sits on `.default` or is the module. */
type QrDecoder = (data: Uint8ClampedArray, width: number, height: number) => { data: string } | null;
const jsQR: QrDecoder = ((jsQRModule as unknown as { default?: QrDecoder }).default ?? jsQRModule) as unknown as QrDecoder;

/** The text a QR code PNG decodes to, or undefined if it does not decode. */
export function decodeQrPng(png: Buffer): string | undefined {
  const image = PNG.sync.read(png);
  return jsQR(new Uint8ClampedArray(image.data), image.width, image.height)?.data;
}

/** Every file on a FAT stick image (mtools: the stick is never mounted). */
export function listStick(stick: string): string[] {
  return execFileSync('mdir', ['-/', '-b', '-i', stick, '::/'], { env: MTOOLS }).toString().split('\n').filter(Boolean);
}

export function readStickFile(stick: string, path: string): Buffer {
  return execFileSync('mtype', ['-i', stick, `::/${path}`], { env: MTOOLS });
}
