// The part of @xmpp/client's API the tests use (the package ships no types).
declare module '@xmpp/client' {
  import type { Element } from 'ltx';
  export interface Client {
    start(): Promise<{ toString(): string }>;
    stop(): Promise<void>;
    send(...stanzas: Element[]): Promise<void>;
    on(event: 'stanza', listener: (s: Element) => void): void;
    on(event: 'error' | 'offline' | 'online', listener: (e: unknown) => void): void;
    iqCaller: { request(iq: Element, timeout?: number): Promise<Element> };
    reconnect: { stop(): void };
  }
  export function client(options: { service: string; domain?: string; username?: string; password?: string; resource?: string }): Client;
  export function xml(name: string, attrs?: Record<string, string | undefined>, ...children: (Element | string)[]): Element;
}
