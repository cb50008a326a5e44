// CodeMirror styles itself through style-mod, which writes a <style> element into a
// document's head (constructable stylesheets only for shadow roots). Our CSP has no
// 'unsafe-inline' for styles, so that element would be refused and the editor unstyled.
// Handing style-mod a stand-in root without a head makes it use one constructable
// stylesheet adopted by the document instead, which the CSP allows. Imported first.

import { StyleModule } from 'style-mod';

const documentRoot = {
  ownerDocument: document,
  get adoptedStyleSheets() {
    return document.adoptedStyleSheets;
  },
  set adoptedStyleSheets(sheets) {
    document.adoptedStyleSheets = sheets;
  },
};

const mount = StyleModule.mount;
StyleModule.mount = (root, modules, options) => mount(root === document ? documentRoot : root, modules, options);
