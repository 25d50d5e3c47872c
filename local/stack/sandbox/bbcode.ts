const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);
}

const SIMPLE_TAGS: Record<string, string> = { b: 'strong', i: 'em', u: 'u', s: 's' };

/**
 * The few BB-code tags a chat shows most (b, i, u, s, br, url) as HTML, everything else as text.
 * The text is escaped first, so a message can never inject markup into the page.
 */
export function bbcodeToHtml(text: string): string {
  let html = escapeHtml(text);
  for (const [tag, element] of Object.entries(SIMPLE_TAGS)) {
    html = html.replace(
      new RegExp(`\\[${tag}\\]([\\s\\S]*?)\\[/${tag}\\]`, 'gi'),
      (_, inner: string) => `<${element}>${inner}</${element}>`,
    );
  }
  html = html.replace(
    /\[url=(https?:\/\/[^\]\s]+)\]([\s\S]*?)\[\/url\]/gi,
    (_, href: string, label: string) => {
      return `<a href="${href}" rel="noreferrer noopener" target="_blank">${label}</a>`;
    },
  );
  html = html.replace(/\[url\](https?:\/\/[^[\s]+)\[\/url\]/gi, (_, href: string) => {
    return `<a href="${href}" rel="noreferrer noopener" target="_blank">${href}</a>`;
  });
  return html.replace(/\[br\]/gi, '<br>').replace(/\r?\n/g, '<br>');
}
