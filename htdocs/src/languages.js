// The room languages the API knows (docs/API.md), with the names people read.
export const LANGUAGES = [
  ['python', 'Python'],
  ['javascript', 'JavaScript'],
  ['typescript', 'TypeScript'],
  ['c', 'C'],
  ['c++', 'C++'],
  ['java', 'Java'],
  ['go', 'Go'],
  ['rust', 'Rust'],
  ['bash', 'Bash'],
  ['ruby', 'Ruby'],
  ['php', 'PHP'],
  ['plaintext', 'Plain text'],
];

export const languageName = (id) => (LANGUAGES.find(([k]) => k === id) || [id, id])[1];

// A language's name in a list to pick from: "Java (edit only)" when it cannot run here
// (runnable false); the plain name when it can or when that is not known (null).
export const languageLabel = (id, runnable) => `${languageName(id)}${runnable === false ? ' (edit only)' : ''}`;
