// XML for the XMPP dialect: parses one complete element (a WebSocket frame
// of RFC 7395, or a BOSH <body/>) into an ltx element tree with saxes, a
// conforming streaming parser, and bounds what a peer can make us build.
// XMPP's restricted XML (RFC 6120 §11.1) forbids DTDs, comments and
// processing instructions; saxes knows only the five predefined entities and
// character references, so no entity ever expands to more than one
// character. Output is built with ltx elements, whose serializer escapes.
import { Element } from 'ltx';
import { SaxesParser } from 'saxes';

export { Element };

/** How much one element may hold. */
export interface XmlLimits {
  /** Characters of XML text (the frame or body itself). */
  maxChars: number;
  /** Nesting depth, the root being 1. */
  maxDepth: number;
  /** Elements in the whole tree. */
  maxElements: number;
  /** Attributes on one element (namespace declarations included). */
  maxAttributes: number;
}

/** Prosody's default stanza size limit is 256 KiB; Jingle offers with many sources nest about 7 deep. */
export const XML_LIMITS: XmlLimits = { maxChars: 256 * 1024, maxDepth: 32, maxElements: 10_000, maxAttributes: 64 };

/** Stream error conditions (RFC 6120 §4.9.3) that the XML layer can ask for. */
export type XmlErrorCondition = 'not-well-formed' | 'restricted-xml' | 'policy-violation' | 'invalid-xml';

export class XmlError extends Error {
  constructor(
    readonly condition: XmlErrorCondition,
    message: string,
  ) {
    super(message);
    this.name = 'XmlError';
  }
}

/**
 * Parses text holding exactly one element (surrounding whitespace allowed).
 * Throws XmlError naming what is wrong: malformed XML, a construct XMPP
 * forbids, or a tree over the limits.
 */
export function parseElement(text: string, limits: XmlLimits = XML_LIMITS): Element {
  if (text.length > limits.maxChars) throw new XmlError('policy-violation', `the XML is ${text.length} characters long, over the ${limits.maxChars}-character limit`);
  const parser = new SaxesParser({ xmlns: true, position: false });
  const stack: Element[] = [];
  let root: Element | undefined;
  let count = 0;
  const restricted = (what: string) => {
    throw new XmlError('restricted-xml', `${what} are not allowed in XMPP (RFC 6120 §11.1)`);
  };
  parser.on('doctype', () => restricted('document type declarations'));
  parser.on('processinginstruction', () => restricted('processing instructions'));
  parser.on('comment', () => restricted('XML comments'));
  parser.on('opentag', (tag) => {
    if (++count > limits.maxElements) throw new XmlError('policy-violation', `more than ${limits.maxElements} elements in one stanza`);
    if (stack.length >= limits.maxDepth) throw new XmlError('policy-violation', `elements nested more than ${limits.maxDepth} deep`);
    const names = Object.keys(tag.attributes);
    if (names.length > limits.maxAttributes) throw new XmlError('policy-violation', `<${tag.name}> has ${names.length} attributes, over the limit of ${limits.maxAttributes}`);
    const attrs: Record<string, string> = {};
    for (const n of names) attrs[n] = tag.attributes[n]!.value;
    const el = new Element(tag.name, attrs);
    const parent = stack.at(-1);
    if (parent) parent.cnode(el);
    else root = el;
    stack.push(el);
  });
  parser.on('closetag', () => {
    stack.pop();
  });
  const onText = (t: string) => {
    const parent = stack.at(-1);
    // Text outside the root is whitespace (saxes rejects anything else).
    if (parent) parent.t(t);
  };
  parser.on('text', onText);
  parser.on('cdata', onText);
  try {
    parser.write(text).close();
  } catch (e) {
    if (e instanceof XmlError) throw e;
    throw new XmlError('not-well-formed', `the XML is not well-formed: ${cleanSaxesMessage((e as Error).message)}`);
  }
  if (!root) throw new XmlError('not-well-formed', 'the XML holds no element');
  return root;
}

function cleanSaxesMessage(m: string): string {
  // saxes prefixes "line:column: " when positions are on; they are off, but keep it tidy anyway.
  return m.replace(/^\d+:\d+: /, '');
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this finds
const CONTROL = /[\u0000-\u001f\u007f]/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this removes
const CONTROLS = /[\u0000-\u001f\u007f]/g;

/** Whether a string holds C0 control characters (line breaks and tabs included) or DEL. */
export function hasControlChars(s: string): boolean {
  return CONTROL.test(s);
}

/** The string without C0 control characters and DEL. */
export function withoutControlChars(s: string): string {
  return s.replace(CONTROLS, '');
}

/** The characters XML 1.0 cannot carry; text from other dialects may hold them. */
const NOT_XML_CHAR = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;

/** Text safe to put in an element or attribute (characters XML cannot carry are replaced with U+FFFD). */
export function xmlSafe(s: string): string {
  return s.replace(NOT_XML_CHAR, '\uFFFD');
}

/** An element with attributes (undefined ones left out) and children; text children are made XML-safe. */
export function el(name: string, attrs: Record<string, string | number | boolean | undefined> = {}, ...children: (Element | string | undefined | false)[]): Element {
  const a: Record<string, string> = {};
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) a[k] = xmlSafe(String(v));
  const e = new Element(name, a);
  for (const c of children) {
    if (c === undefined || c === false) continue;
    if (typeof c === 'string') e.t(xmlSafe(c));
    else e.cnode(c);
  }
  return e;
}

/** The child elements of an element (text left out). */
export function childElements(e: Element): Element[] {
  return e.children.filter((c): c is Element => typeof c !== 'string');
}

/** An attribute as a string, or undefined when absent. */
export function attr(e: Element, name: string): string | undefined {
  const v: unknown = e.attrs[name];
  return typeof v === 'string' ? v : undefined;
}
