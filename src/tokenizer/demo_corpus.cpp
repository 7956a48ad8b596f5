// The text the demo tokenizer learns its merges from.
#include "nibble/tokenizer/demo_tokenizer.h"

namespace nibble {

const std::string& demo_tokenizer_training_text() {
  static const std::string text = R"(The small language model reads a prompt one token at a time and answers with the
words it thinks should come next. Before it can read anything, the text has to be cut into tokens: short
pieces of words, whole common words, spaces and punctuation. A tokenizer learns those pieces from examples.
It starts with the 256 possible bytes and then, again and again, joins the pair of neighbours that appears
most often, until the vocabulary is as large as the model needs.

When you start the server, it loads the weights of the model onto the GPU, reserves memory for the cache of
keys and values, and waits for requests. Each request brings a list of messages from a system, a user, an
assistant or a tool. The chat template turns those messages into one long string; the tokenizer turns that
string into numbers; the scheduler decides which requests run in the next step; and the engine computes the
probabilities of the next token for all of them together. Then the sampler picks a token, the detokenizer turns
it back into text, and the server streams it to the client as soon as it is complete.

There are many questions a user might ask. What is the weather like today? How do I bake bread at home? Can you
write a short poem about the sea, the wind and the stars? Please explain how a computer adds two numbers, why
the sky is blue, and what happens when water boils at 100 degrees. The assistant should answer clearly, give an
example when it helps, and say so when it does not know. It should be kind, honest and helpful, and it should
never pretend that something is true when it is not.

In the morning the town was quiet. A few people walked along the river, a dog ran after a ball, and the baker
opened the door of his shop. The smell of fresh bread filled the street. Children went to school with their books,
and their parents went to work by bus, by train or by bike. At noon the sun was high and warm; in the evening the
sky turned orange, then purple, and the first lights came on in the windows of the houses.

Numbers matter too: 1, 2, 3, 10, 42, 100, 256, 1024, 2048 and 3.14 are all common. So are dates like 2024-05-01,
times like 12:30, prices like $19.99, and code such as x = y + 1; if (n > 0) { return n * 2; } print("hello").
Lists, quotes and questions are everywhere: "yes", 'no', (maybe), [one, two], {key: value}!

Science begins with curiosity. A student notices that ice melts faster on a metal plate than on a wooden board,
wonders why, and designs an experiment: two plates, two cubes of ice, a clock, and a notebook for the results.
Physics explains heat, light, sound, electricity and motion; chemistry describes atoms, molecules and reactions;
biology studies cells, plants, animals and the human body; astronomy looks at planets, moons, comets, galaxies
and the history of the universe. Mathematics gives all of them a common language of numbers, shapes, functions,
equations, probability and proof.

Cooking is a kind of chemistry you can eat. To make a simple soup, chop two onions, three carrots and a few
potatoes, warm some olive oil in a large pot, and cook the vegetables slowly until they are soft. Add water or
broth, a pinch of salt, pepper, garlic and fresh herbs, then let everything simmer for twenty minutes. Taste it,
adjust the seasoning, and serve it hot with bread, cheese or a green salad. Breakfast might be eggs, yogurt,
fruit, coffee or tea; dinner might be rice, beans, fish, chicken, pasta or noodles.

Travel teaches patience. Trains leave from the central station every hour, flights are sometimes delayed, and
maps on a phone can be wrong about a narrow street in an old city. Travelers carry passports, tickets, money,
chargers and umbrellas. They visit museums, markets, mountains, beaches, lakes, forests, castles and bridges;
they learn a few words of a new language, such as hello, please, thank you, good morning and goodbye, and they
remember the people they met more than the places they saw.

Software is written by people for people. A good program has clear names, short functions, careful tests and
helpful error messages. Developers use version control to record every change, review each other's code, and
fix bugs before users find them. Servers answer requests over the network; databases store records in tables;
compilers translate source code into machine instructions; operating systems share memory, files, processes and
threads between many programs at once. When something fails, the logs tell the story of what happened and why.

History is full of questions without simple answers. Farmers learned to grow wheat, rice and corn; cities rose
along rivers; writing, money, laws and schools followed. Empires grew and fell, explorers crossed oceans, printers
spread books, engines changed factories, and electricity lit the night. Today people talk with friends across the
world in seconds, yet they still tell stories, sing songs, paint pictures, play games and look up at the stars.
)";
  return text;
}

}  // namespace nibble
