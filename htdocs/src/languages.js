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
  ['plaintext', 'Plain text'],
];

export const languageName = (id) => (LANGUAGES.find(([k]) => k === id) || [id, id])[1];
