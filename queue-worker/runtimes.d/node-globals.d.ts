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
