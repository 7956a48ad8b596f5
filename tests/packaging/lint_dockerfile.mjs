// Lints docker/Dockerfile with dockerfile-utils (the linter behind the Docker
// language server) and checks what the image promises: multi-stage CUDA 13 build
// into a runtime image, a CPU-only target, non-root user, port 8000, a health
// check against /health, models under /models.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';
import { test } from 'node:test';

const [, , dockerfilePath, nodeModules] = process.argv;
const require = createRequire(resolve(nodeModules) + '/');
let utils;
try {
  utils = require('dockerfile-utils');
} catch {
  console.log('dockerfile-utils not installed (run scripts/install-deps.sh): skipping');
  process.exit(77);
}
const text = readFileSync(dockerfilePath, 'utf8');
const lines = text.split('\n');

test('dockerfile-utils finds no problem', () => {
  const problems = utils.validate(text, { deprecatedMaintainer: 2, emptyContinuationLine: 2,
    instructionCasing: 2, instructionCmdMultiple: 2, instructionEntrypointMultiple: 2,
    instructionHealthcheckMultiple: 2, instructionJSONInSingleQuotes: 2, directiveCasing: 2 });
  assert.deepEqual(problems.map((p) => `line ${p.range.start.line + 1}: ${p.message}`), []);
});

function stages() {
  const result = [];
  for (const line of lines) {
    const m = line.match(/^FROM\s+(\S+)\s+AS\s+(\S+)/i);
    if (m) result.push({ image: m[1], name: m[2], body: [] });
    else if (result.length) result[result.length - 1].body.push(line);
  }
  return result;
}

test('multi-stage: CUDA 13 devel build into a CUDA runtime image, plus a CPU target', () => {
  const s = stages();
  const byName = Object.fromEntries(s.map((x) => [x.name, x]));
  assert.match(text, /ARG CUDA_VERSION=13\./);
  assert.match(byName['build-cuda'].image, /^nvidia\/cuda:\$\{CUDA_VERSION\}-devel-/);
  assert.match(byName['runtime'].image, /^nvidia\/cuda:\$\{CUDA_VERSION\}-runtime-/);
  assert.ok(byName['runtime-cpu'], 'a CPU-only runtime target');
  assert.equal(s[s.length - 1].name, 'runtime', 'the GPU image is the default (last) stage');
  for (const name of ['runtime', 'runtime-cpu']) {
    const body = byName[name].body.join('\n');
    assert.match(body, /COPY --from=build-/, `${name} copies the binary from a build stage`);
    assert.doesNotMatch(body, /cmake --build/, `${name} does not compile`);
  }
});

test('each runtime runs as a non-root user, exposes 8000, checks /health, mounts /models', () => {
  for (const stage of stages().filter((x) => x.name.startsWith('runtime'))) {
    const body = stage.body.join('\n');
    const user = body.match(/^USER\s+(\S+)/m);
    assert.ok(user && user[1] !== 'root' && user[1] !== '0', `${stage.name}: non-root USER`);
    assert.match(body, /^EXPOSE 8000$/m, `${stage.name}: EXPOSE 8000`);
    assert.match(body, /^HEALTHCHECK .*\n?.*\/health/m, `${stage.name}: HEALTHCHECK on /health`);
    assert.match(body, /\/models/, `${stage.name}: models under /models`);
    assert.match(body, /nibble\.toml/, `${stage.name}: ships the default config`);
  }
});
