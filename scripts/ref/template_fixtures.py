#!/usr/bin/env python3
"""Chat-template and raw-prompt fixtures from transformers (jinja2) for the Swift ChatTemplate tests.

Writes Tests/Fixtures/templates/:
  chat_templates.json  the chat templates rlif recognises, each with the strings transformers'
                       `apply_chat_template(messages, tokenize=False, add_generation_prompt=True)` renders for a set
                       of (system?, user) conversations, and (for the real GGUF tokenizers) the ids of
                       `apply_chat_template(..., tokenize=True)`; plus templates rlif must refuse.
  stories260K-raw.json the `raw` template on ../shared/data/stories260K: ids of `tokenizer(prompt)` (BOS per the
                       tokenizer) and transformers' greedy continuation, for "Once upon a time" and "" (BOS alone).

Template sources:
  qwen2.5-0.5b, qwen2.5-1.5b, smollm2: `tokenizer.chat_template` of the real GGUFs in $RLIF_MODELS (read with gguf's
      GGUFReader) and rendered by each GGUF's own transformers tokenizer (AutoTokenizer.from_pretrained(dir,
      gguf_file=...)). The two Qwen files differ only inside the tools branch.
  llama3, llama3.1, llama3.2: the official Meta-Llama-3-8B-Instruct / Llama-3.1-8B-Instruct / Llama-3.2-1B-Instruct
      tokenizer_config.json `chat_template` texts (written out below), rendered by transformers with bos_token
      "<|begin_of_text|>" (no Llama tokenizer is available offline; the template sees only the bos string).
      Llama 3.2 calls strftime_now unless `date_string` is passed: we pass date_string="02 Dec 2026" so the fixture
      is deterministic, and the Swift test passes the same date.

Run: python3 scripts/ref/template_fixtures.py [--models /work/models] [--shared ../shared/data]
"""
import argparse, json, os, sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(REPO, "Tests", "Fixtures", "templates")

# Official Llama 3 Instruct template (meta-llama/Meta-Llama-3-8B-Instruct, tokenizer_config.json).
LLAMA3 = ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
          "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
          "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
          "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")

# Official Llama 3.1 Instruct template (meta-llama/Llama-3.1-8B-Instruct, tokenizer_config.json). Its date is fixed
# ("26 Jul 2024") unless the caller passes date_string.
LLAMA31_HEAD = """{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
"""
# Llama 3.2's head: today's date via strftime_now (the official 3.2 body also drops the builtin-tools lines; for
# conversations without tools the 3.1 body below renders the same, so "llama3.2" here is 3.1's body with 3.2's head).
LLAMA32_HEAD = """{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}
"""
LLAMA31_BODY = """{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message + builtin tools #}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{%- if builtin_tools is defined or tools is not none %}
    {{- "Environment: ipython\\n" }}
{%- endif %}
{%- if builtin_tools is defined %}
    {{- "Tools: " + builtin_tools | reject('equalto', 'code_interpreter') | join(", ") + "\\n\\n"}}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\\n\\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\\n\\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\\n\\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\\n\\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {%- if builtin_tools is defined and tool_call.name in builtin_tools %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
            {{- "<|python_tag|>" + tool_call.name + ".call(" }}
            {%- for arg_name, arg_val in tool_call.arguments | items %}
                {{- arg_name + '="' + arg_val + '"' }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- endif %}
                {%- endfor %}
            {{- ")" }}
        {%- else  %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
            {{- '{"name": "' + tool_call.name + '", ' }}
            {{- '"parameters": ' }}
            {{- tool_call.arguments | tojson }}
            {{- "}" }}
        {%- endif %}
        {%- if builtin_tools is defined %}
            {#- This means we're in ipython mode #}
            {{- "<|eom_id|>" }}
        {%- else %}
            {{- "<|eot_id|>" }}
        {%- endif %}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\\n\\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""
LLAMA31 = LLAMA31_HEAD + LLAMA31_BODY
LLAMA32 = LLAMA32_HEAD + LLAMA31_BODY
LLAMA_DATE = "02 Dec 2026"

MATH = ("You are a helpful AI Assistant, designed to provided well-reasoned and detailed responses. You FIRST think "
        "about the reasoning process step by step and then provide the user with the answer. Please put your final "
        "answer within \\boxed{}.")

# Templates rlif must refuse (rendering them natively would be wrong): Gemma's, and a ChatML template whose
# generation prompt is not the plain "<|im_start|>assistant\n".
GEMMA = ("{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
         "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception("
         "'Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == "
         "'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' "
         "+ role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}{% if add_generation_prompt %}"
         "{{'<start_of_turn>model\\n'}}{% endif %}")


def conversations(shared):
    q = "Janet\u2019s ducks lay 16 eggs per day. How many are left?"
    p = os.path.join(shared, "gsm8k", "test.jsonl") if shared else None
    if p and os.path.exists(p):
        with open(p) as f:
            q = json.loads(f.readline())["question"]
    return [
        {"system": None, "user": "What is 2+2?"},
        {"system": MATH, "user": q},
        {"system": None, "user": q},
        {"system": "You are a pirate.", "user": "  Hello there!\n\n"},
        {"system": "  \nSpaced system\n ", "user": "\u3000full-width space, emoji \U0001F600 and a line separator\u2028"},
        {"system": "", "user": "An empty system message is still a system message."},
        {"system": None, "user": "Line one\nLine two\twith tab\u00a0nbsp and a trailing space "},
        {"system": None, "user": "Use <|im_end|> and <|eot_id|> literally."},
        {"system": None, "user": ""},
        {"system": "S", "user": "x\x1c\x1f\x85"},
    ]


def messages(c):
    m = []
    if c["system"] is not None:
        m.append({"role": "system", "content": c["system"]})
    m.append({"role": "user", "content": c["user"]})
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=os.environ.get("RLIF_MODELS", "/work/models"))
    ap.add_argument("--shared", default=os.environ.get("RLIF_SHARED_DATA", os.path.join(REPO, "..", "shared", "data")))
    args = ap.parse_args()
    import transformers
    from transformers import AutoTokenizer
    from gguf import GGUFReader

    os.makedirs(OUT, exist_ok=True)
    convs = conversations(args.shared)
    templates = []

    ggufs = [("qwen2.5-0.5b", "qwen2.5-coder-0.5b-instruct.gguf"), ("qwen2.5-1.5b", "qwen2.5-coder-1.5b-instruct.gguf"),
             ("smollm2", "smollm2-135m-instruct.gguf")]
    for name, file in ggufs:
        path = os.path.join(args.models, file)
        if not os.path.exists(path):
            sys.exit(f"{path} is missing (set --models)")
        text = GGUFReader(path).fields["tokenizer.chat_template"].contents()
        tok = AutoTokenizer.from_pretrained(args.models, gguf_file=file)
        assert tok.chat_template == text, f"{file}: transformers' chat_template differs from the GGUF field"
        rendered = [tok.apply_chat_template(messages(c), tokenize=False, add_generation_prompt=True) for c in convs]
        ids = [list(map(int, tok(r, add_special_tokens=False)["input_ids"])) for r in rendered]
        via = [tok.apply_chat_template(messages(c), tokenize=True, add_generation_prompt=True) for c in convs]
        via = [list(map(int, v["input_ids"] if hasattr(v, "keys") else v)) for v in via]
        assert via == ids, f"{file}: apply_chat_template(tokenize=True) is not tokenizer(rendered, add_special_tokens=False)"
        templates.append({"name": name, "source": f"{file} tokenizer.chat_template", "template": text,
                          "bos_token": tok.bos_token, "rendered": rendered, "ids": ids})
        print(f"{name}: {rendered[0]!r}")

    # Llama 3.x: render with any tokenizer; only bos_token reaches the template.
    tok = AutoTokenizer.from_pretrained(args.models, gguf_file="smollm2-135m-instruct.gguf")
    for name, text, kw in [("llama3", LLAMA3, {}), ("llama3.1", LLAMA31, {}),
                           ("llama3.2", LLAMA32, {"date_string": LLAMA_DATE})]:
        rendered = [tok.apply_chat_template(messages(c), tokenize=False, add_generation_prompt=True, chat_template=text,
                                            bos_token="<|begin_of_text|>", **kw) for c in convs]
        entry = {"name": name, "source": "official tokenizer_config.json chat_template (fixture)", "template": text,
                 "bos_token": "<|begin_of_text|>", "rendered": rendered}
        if kw:
            entry["date_string"] = kw["date_string"]
        templates.append(entry)
        print(f"{name}: {rendered[0]!r}")

    unsupported = [
        {"name": "gemma", "template": GEMMA},
        {"name": "chatml-with-prefilled-answer",
         "template": templates[0]["template"].replace("'<|im_start|>assistant\\n'", "'<|im_start|>assistant\\nAnswer:'")},
        {"name": "llama3-with-prefilled-answer",
         "template": LLAMA3.replace("<|end_header_id|>\n\n' }}", "<|end_header_id|>\n\nAnswer:' }}")},
    ]
    for u in unsupported:
        assert u["template"] not in (t["template"] for t in templates)

    with open(os.path.join(OUT, "chat_templates.json"), "w") as f:
        json.dump({"transformers": transformers.__version__, "conversations": convs, "templates": templates,
                   "unsupported": unsupported}, f, indent=1, ensure_ascii=False)
        f.write("\n")

    # raw prompts on stories260K.
    src = os.path.join(args.shared, "stories260K")
    if not os.path.isdir(src):
        print("skip stories260K: absent")
        return
    import torch
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(src, attn_implementation="eager", dtype=torch.float32).eval()
    stok = AutoTokenizer.from_pretrained(src)
    cases = []
    for prompt in ["Once upon a time", ""]:
        ids = list(map(int, stok(prompt)["input_ids"]))  # add_special_tokens=True: BOS per the tokenizer
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), max_new_tokens=48, min_new_tokens=48, do_sample=False,
                                 pad_token_id=0)
        gen = out[0, len(ids):].tolist()
        cases.append({"prompt": prompt, "prompt_ids": ids, "generated": gen, "text": stok.decode(gen)})
        print(f"stories260K {prompt!r} -> {stok.decode(gen)[:60]!r}")
    with open(os.path.join(OUT, "stories260K-raw.json"), "w") as f:
        json.dump({"note": "raw template: tokenizer(prompt) then greedy (argmax), transformers eager float32",
                   "cases": cases}, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
