// What a TypeScript program in CodeCollab's sandbox may use from Node.js without type
// packages (Debian 12 ships the compiler but no @types/node). Node's API is untyped
// here: its values are `any`, while the program's own code is checked as usual.
declare var process: any;
declare var console: any;
declare var module: any;
declare var exports: any;
declare var Buffer: any;
declare var __filename: string;
declare var __dirname: string;
declare function require(id: string): any;
declare function setTimeout(callback: (...args: any[]) => void, ms?: number, ...args: any[]): any;
declare function clearTimeout(handle: any): void;
declare function setInterval(callback: (...args: any[]) => void, ms?: number, ...args: any[]): any;
declare function clearInterval(handle: any): void;
declare function setImmediate(callback: (...args: any[]) => void, ...args: any[]): any;
declare function queueMicrotask(callback: () => void): void;
declare class TextEncoder { encode(text?: string): Uint8Array; }
declare class TextDecoder { constructor(label?: string); decode(bytes?: Uint8Array): string; }
// Node's built-in modules, for `import … from 'fs'` (and 'node:fs'): untyped as well.
declare module 'assert'; declare module 'node:assert';
declare module 'buffer'; declare module 'node:buffer';
declare module 'child_process'; declare module 'node:child_process';
declare module 'crypto'; declare module 'node:crypto';
declare module 'events'; declare module 'node:events';
declare module 'fs'; declare module 'node:fs';
declare module 'fs/promises'; declare module 'node:fs/promises';
declare module 'os'; declare module 'node:os';
declare module 'path'; declare module 'node:path';
declare module 'process'; declare module 'node:process';
declare module 'readline'; declare module 'node:readline';
declare module 'readline/promises'; declare module 'node:readline/promises';
declare module 'stream'; declare module 'node:stream';
declare module 'string_decoder'; declare module 'node:string_decoder';
declare module 'timers'; declare module 'node:timers';
declare module 'url'; declare module 'node:url';
declare module 'util'; declare module 'node:util';
declare module 'zlib'; declare module 'node:zlib';
declare module 'worker_threads'; declare module 'node:worker_threads';
declare module 'perf_hooks'; declare module 'node:perf_hooks';
