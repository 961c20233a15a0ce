/**
 * What .github/workflows/release.yml must keep (the security review's M7): building runs code we do not control
 * (recipes, simplexmq's binaries, Raspberry Pi OS), so the job that builds holds no secret and no write token,
 * the signing key is seen by one job that never builds, and the one job whose token may write never builds
 * either. `releaseWorkflowProblems` lists every way a parsed workflow breaks that; the test holds the real file
 * to none, and shows on altered copies that each rule does catch what it is for.
 */

export interface WorkflowStep {
  name?: string;
  uses?: string;
  run?: string;
  if?: string;
  with?: Record<string, unknown>;
  env?: Record<string, string>;
}

export interface WorkflowJob {
  needs?: string | string[];
  permissions?: Record<string, string> | string;
  env?: Record<string, string>;
  secrets?: unknown;
  steps: WorkflowStep[];
  [key: string]: unknown;
}

export interface Workflow {
  on: { push: { tags: string[] }; workflow_dispatch: { inputs: Record<string, { type: string; default: unknown }> } };
  permissions?: Record<string, string> | string;
  env?: Record<string, string>;
  concurrency?: { group: string; 'cancel-in-progress': boolean };
  jobs: Record<string, WorkflowJob>;
}

/** Actions a job that holds the signing key or a write token may use: GitHub's own, nothing else. */
export const TRUSTED_ACTIONS = ['actions/checkout', 'actions/setup-node', 'actions/download-artifact', 'actions/upload-artifact'];

/** A reference to a secret, or to a token GitHub gives the job. */
const CREDENTIAL = /secrets\.|"secrets"|github\.token|GH_TOKEN|GITHUB_TOKEN/i;
/** What only the build job may run: the host setup (root, apt), a build (recipes, downloads) or anything as root. */
const BUILDS = /setup-host|release -- (build-all|assemble)\b|\bsudo\b/g;

const needsOf = (job: WorkflowJob) => (job.needs === undefined ? [] : typeof job.needs === 'string' ? [job.needs] : job.needs);
const runsOf = (job: WorkflowJob) => job.steps.map((s) => s.run ?? '').join('\n');
const releaseStep = (step: string) => new RegExp(`npm run release -- ${step}(\\s|$)`);

/** Whether a permissions value can write anything; none given means GitHub's default, which may write. */
function grantsWrite(permissions: Record<string, string> | string | undefined): boolean {
  if (permissions === undefined) return true;
  if (typeof permissions === 'string') return permissions !== 'read-all';
  return Object.values(permissions).some((level) => level !== 'read' && level !== 'none');
}

/** The names of the steps in `job` that upload (or download) an artifact, by the artifact's name. */
function artifacts(job: WorkflowJob, action: 'upload-artifact' | 'download-artifact'): Array<{ index: number; name: unknown; step: WorkflowStep }> {
  return job.steps.flatMap((step, index) => (step.uses?.startsWith(`actions/${action}@`) && step.if === undefined ? [{ index, name: step.with?.name, step }] : []));
}

export function releaseWorkflowProblems(workflow: Workflow): string[] {
  const problems: string[] = [];
  const jobs = Object.entries(workflow.jobs);

  // Everything outside `jobs` reaches every job, the build job included.
  if (grantsWrite(workflow.permissions)) problems.push(`top-level permissions ${JSON.stringify(workflow.permissions ?? "(none: GitHub's default)")} may write; give {} and let each job ask`);
  const { jobs: _jobs, ...topLevel } = workflow;
  if (CREDENTIAL.test(JSON.stringify(topLevel))) problems.push('a secret or token is named outside the jobs, where every job (the build job too) gets it');

  // Which job does what, by the release steps it runs.
  const jobRunning = (step: string) => jobs.filter(([, job]) => releaseStep(step).test(runsOf(job))).map(([name]) => name);
  const role = (what: string, steps: string[]): string | undefined => {
    const names = [...new Set(steps.flatMap(jobRunning))];
    if (names.length !== 1) {
      problems.push(`the ${what} steps (${steps.join(', ')}) must run in exactly one job, not in ${names.length ? names.join(', ') : 'none'}`);
      return undefined;
    }
    return names[0];
  };
  const build = role('build', ['build-all', 'assemble']);
  const sign = role('sign', ['sign']);
  const publish = role('publish', ['previous', 'notes', 'publish']);
  const separate = Boolean(build && sign && publish && new Set([build, sign, publish]).size === 3);
  if (build && sign && publish && !separate) problems.push(`build, sign and publish must be three jobs; they are ${build}, ${sign}, ${publish}`);

  for (const [name, job] of jobs) {
    // Permissions: only the publish job may write, and only the release (contents).
    if (job.permissions === undefined) problems.push(`job ${name} has no permissions of its own`);
    if (name === publish) {
      const { contents, ...rest } = typeof job.permissions === 'object' ? job.permissions : { contents: undefined };
      if (contents !== 'write') problems.push(`job ${name} publishes but has no contents: write`);
      if (job.permissions !== undefined && grantsWrite(typeof job.permissions === 'object' ? rest : job.permissions)) problems.push(`job ${name} may write more than contents: ${JSON.stringify(job.permissions)}`);
    } else if (grantsWrite(job.permissions)) {
      problems.push(`job ${name} may write (${JSON.stringify(job.permissions ?? 'default')}); only the publish job may`);
    }
    // Checkout leaves the token in .git/config unless told not to, for every later step to read.
    for (const step of job.steps.filter((s) => s.uses?.startsWith('actions/checkout@'))) {
      if (step.with?.['persist-credentials'] !== false) problems.push(`job ${name}: actions/checkout without persist-credentials: false`);
    }
    if (job.secrets !== undefined) problems.push(`job ${name} passes secrets on (secrets:)`);
    // The signing key: in the sign job only.
    if (name !== sign && /secrets\.|SIMPLEX_PI_SIGNING_KEY/.test(JSON.stringify(job))) problems.push(`job ${name} names a secret or the signing key; only the sign job may`);
  }

  if (build) {
    const job = workflow.jobs[build]!;
    if (CREDENTIAL.test(JSON.stringify(job))) problems.push(`job ${build} builds (recipes, downloads) and names a secret or token`);
    if (needsOf(job).length) problems.push(`job ${build} builds and must come first, not after ${needsOf(job).join(', ')}`);
    if (!job.steps.some((s) => s.if === 'failure()' && s.uses?.startsWith('actions/upload-artifact@'))) problems.push(`job ${build} keeps no logs of a failed build`);
  }
  // Whatever builds, sets up the host or runs as root belongs to the build job and nowhere else.
  for (const [name, job] of jobs) {
    if (name === build) continue;
    for (const found of new Set([...runsOf(job).matchAll(BUILDS)].map((m) => m[0]))) problems.push(`job ${name} runs "${found}"; only the build job may build, set up the host or use root`);
  }
  for (const name of [sign, publish]) {
    if (!name) continue;
    const job = workflow.jobs[name]!;
    for (const step of job.steps) {
      if (step.uses && !TRUSTED_ACTIONS.some((action) => step.uses!.startsWith(`${action}@`))) problems.push(`job ${name} uses ${step.uses}, which would run with what the job holds`);
      if (/\bnpm (ci|install|i)\b/.test(step.run ?? '') && !/--ignore-scripts/.test(step.run ?? '')) problems.push(`job ${name} installs npm packages with their install scripts: "${step.run!.trim()}"`);
    }
  }

  if (sign) {
    const job = workflow.jobs[sign]!;
    if (separate && !needsOf(job).includes(build!)) problems.push(`job ${sign} must need ${build}`);
    // The key only in the sign step's environment, never given to a dry run, never on a command line.
    const withSecret = job.steps.filter((s) => JSON.stringify(s).includes('secrets.'));
    for (const step of withSecret) {
      if (!releaseStep('sign').test(step.run ?? '')) problems.push(`job ${sign}: step "${step.name ?? step.uses ?? step.run}" names a secret and is not the sign step`);
    }
    if (!withSecret.some((s) => /env\.DRY_RUN == '' && secrets\.SIMPLEX_PI_SIGNING_KEY/.test(s.env?.SIMPLEX_PI_SIGNING_KEY ?? ''))) {
      problems.push(`job ${sign}: the sign step does not take SIMPLEX_PI_SIGNING_KEY from secrets, for real releases only`);
    }
    if (/secrets\.|SIMPLEX_PI_SIGNING_KEY/.test(runsOf(job))) problems.push(`job ${sign}: the signing key is on a command line`);
  }
  if (separate && !needsOf(workflow.jobs[publish!]!).includes(sign!)) problems.push(`job ${publish} must need ${sign}`);

  // The files travel build -> sign -> publish as artifacts, each taken before the step that uses them.
  const handOver = (from: string | undefined, to: string | undefined, beforeStep: string) => {
    if (!separate || !from || !to) return;
    const uploaded = artifacts(workflow.jobs[from]!, 'upload-artifact').map((a) => a.name);
    const downloads = artifacts(workflow.jobs[to]!, 'download-artifact');
    const used = workflow.jobs[to]!.steps.findIndex((s) => releaseStep(beforeStep).test(s.run ?? ''));
    if (!downloads.some((d) => uploaded.includes(d.name) && d.index < used)) problems.push(`job ${to} does not download what job ${from} uploads before it runs ${beforeStep}`);
  };
  handOver(build, sign, 'sign');
  handOver(sign, publish, 'previous');
  return problems;
}
