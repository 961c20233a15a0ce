// npm run docs (or npm run schema): regenerate every generated document (ci/docs.ts lists them).
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO, generatedDocs } from './docs.ts';

for (const doc of await generatedDocs()) {
  const file = join(REPO, doc.path);
  const current = await readFile(file, 'utf8').catch(() => undefined);
  if (current === doc.text) continue;
  await writeFile(file, doc.text);
  console.log(`wrote ${doc.path}`);
}
console.log('generated documents are current');
