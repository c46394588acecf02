#!/usr/bin/env node
// Compiles every contracts/**/*.sol with the npm `solc` (solc-js, standard JSON)
// into contracts/artifacts/<ContractName>.json:
//   {"contractName", "abi", "bytecode", "sourceHash" (sha256 of the .sol file),
//    "compiler": {"version", "settings"}}
// for every deployable contract (interfaces and abstract contracts get none).
// The output is deterministic (same sources + same solc => same bytes), so the
// artifacts are committed and checked against the sources.
//
// Usage:
//   node contracts/compile.mjs            write contracts/artifacts/ (and drop stale ones)
//   node contracts/compile.mjs --check    compile in memory, exit 1 if the committed
//                                         artifacts differ from the sources
//   node contracts/compile.mjs --out DIR  write the artifacts into DIR instead
//
// Exit codes: 0 ok, 1 artifacts out of date (--check), 2 compile error / usage.

import { createHash } from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'
import solc from 'solc'

const CONTRACTS_DIR = path.dirname(fileURLToPath(import.meta.url))
const ROOT = path.dirname(CONTRACTS_DIR)
const DEFAULT_OUT = path.join(CONTRACTS_DIR, 'artifacts')

// What goes into the bytecode. "paris" = no PUSH0, so the code runs on any EVM
// chain from the Merge on, anvil included.
const SETTINGS = {
  evmVersion: 'paris',
  optimizer: { enabled: true, runs: 200 },
}

function usage(msg) {
  if (msg) console.error(`compile.mjs: ${msg}`)
  console.error('usage: node contracts/compile.mjs [--check] [--out DIR]')
  process.exit(2)
}

function parseArgs(argv) {
  const opts = { check: false, out: DEFAULT_OUT }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--check') opts.check = true
    else if (a === '--out') {
      if (i + 1 >= argv.length) usage('--out needs a directory')
      opts.out = path.resolve(argv[++i])
    } else if (a === '-h' || a === '--help') usage()
    else usage(`unknown argument ${a}`)
  }
  return opts
}

const sha256 = data => createHash('sha256').update(data).digest('hex')

// Imports: relative to contracts/, then node_modules (e.g. "@scope/pkg/x.sol").
function findImports(importPath) {
  for (const base of [CONTRACTS_DIR, path.join(ROOT, 'node_modules')]) {
    const p = path.join(base, importPath)
    if (fs.existsSync(p)) return { contents: fs.readFileSync(p, 'utf8') }
  }
  return { error: `file not found: ${importPath}` }
}

// contracts/**/*.sol (e.g. contracts/test/ReentrantToken.sol), as POSIX paths relative to
// contracts/, sorted; the artifacts/ folder is not searched. Artifacts are flat:
// contracts/artifacts/<ContractName>.json whatever folder the source is in.
function solidityFiles(dir = CONTRACTS_DIR, prefix = '') {
  const found = []
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const rel = prefix + entry.name
    if (entry.isDirectory()) {
      if (prefix === '' && (entry.name === 'artifacts' || entry.name === 'node_modules')) continue
      found.push(...solidityFiles(path.join(dir, entry.name), rel + '/'))
    } else if (entry.isFile() && entry.name.endsWith('.sol')) found.push(rel)
  }
  return found.sort()
}

function compile() {
  const files = solidityFiles()
  if (files.length === 0) usage(`no .sol files in ${CONTRACTS_DIR}`)

  const sources = {}
  const hashes = {}
  for (const f of files) {
    const raw = fs.readFileSync(path.join(CONTRACTS_DIR, f))
    sources[f] = { content: raw.toString('utf8') }
    hashes[f] = sha256(raw)
  }
  const input = {
    language: 'Solidity',
    sources,
    settings: {
      ...SETTINGS,
      outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
    },
  }
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }))

  let failed = false
  for (const e of output.errors ?? []) {
    console.error(e.formattedMessage ?? e.message)
    if (e.severity === 'error') failed = true
  }
  if (failed) {
    console.error('compile.mjs: compilation failed')
    process.exit(2)
  }

  const version = solc.version()
  const artifacts = new Map() // file name -> text
  for (const f of files) {
    const contracts = output.contracts?.[f] ?? {}
    for (const name of Object.keys(contracts).sort()) {
      const c = contracts[name]
      const object = c.evm?.bytecode?.object ?? ''
      // Interfaces and abstract contracts cannot be deployed: no artifact.
      if (!object) continue
      if (object.includes('__$')) {
        console.error(`compile.mjs: ${name} needs library linking, which this script does not do`)
        process.exit(2)
      }
      const artifact = {
        contractName: name,
        abi: c.abi,
        bytecode: object ? `0x${object}` : '0x',
        sourceHash: hashes[f],
        compiler: { version, settings: SETTINGS },
      }
      const out = `${name}.json`
      if (artifacts.has(out)) {
        console.error(`compile.mjs: two contracts are named ${name}; artifact names must be unique`)
        process.exit(2)
      }
      artifacts.set(out, JSON.stringify(artifact, null, 2) + '\n')
    }
  }
  return artifacts
}

function existingArtifacts(dir) {
  if (!fs.existsSync(dir)) return []
  return fs.readdirSync(dir).filter(f => f.endsWith('.json')).sort()
}

function main() {
  const opts = parseArgs(process.argv.slice(2))
  const artifacts = compile()
  const rel = p => path.relative(process.cwd(), p) || '.'

  if (opts.check) {
    const problems = []
    for (const [file, text] of artifacts) {
      const p = path.join(opts.out, file)
      if (!fs.existsSync(p)) problems.push(`missing: ${rel(p)}`)
      else if (fs.readFileSync(p, 'utf8') !== text) problems.push(`differs: ${rel(p)}`)
    }
    for (const file of existingArtifacts(opts.out)) {
      if (!artifacts.has(file)) problems.push(`stale (no source): ${rel(path.join(opts.out, file))}`)
    }
    if (problems.length) {
      for (const p of problems) console.error(p)
      console.error('compile.mjs: artifacts are out of date; run `node contracts/compile.mjs` and commit contracts/artifacts/')
      process.exit(1)
    }
    console.log(`compile.mjs: ${artifacts.size} artifact(s) match the sources (solc ${solc.version()})`)
    return
  }

  fs.mkdirSync(opts.out, { recursive: true })
  for (const file of existingArtifacts(opts.out)) {
    if (!artifacts.has(file)) {
      fs.unlinkSync(path.join(opts.out, file))
      console.log(`removed stale ${rel(path.join(opts.out, file))}`)
    }
  }
  for (const [file, text] of artifacts) {
    const p = path.join(opts.out, file)
    if (fs.existsSync(p) && fs.readFileSync(p, 'utf8') === text) continue
    fs.writeFileSync(p, text)
    console.log(`wrote ${rel(p)}`)
  }
  console.log(`compile.mjs: ${artifacts.size} artifact(s) up to date (solc ${solc.version()})`)
}

main()
