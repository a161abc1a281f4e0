// Render an Ollama Modelfile TEMPLATE the way Ollama does, for tests: Go's text/template, the
// Modelfile's SYSTEM put first when the chat has no system turn, and Ollama's collation
// (system turns joined into .System, consecutive turns of one role merged).
//
// stdin: {"template": "...", "system": "...", "messages": [{"role": "...", "content": "..."}]}
// stdout: the prompt text
package main

import (
	"encoding/json"
	"os"
	"strings"
	"text/template"
)

type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type Input struct {
	Template string    `json:"template"`
	System   string    `json:"system"`
	Messages []Message `json:"messages"`
}

func collate(msgs []Message) (string, []*Message) {
	var system []string
	var collated []*Message
	for i := range msgs {
		msg := msgs[i]
		if msg.Role == "system" {
			system = append(system, msg.Content)
		}
		if len(collated) > 0 && collated[len(collated)-1].Role == msg.Role {
			collated[len(collated)-1].Content += "\n\n" + msg.Content
		} else {
			collated = append(collated, &msg)
		}
	}
	return strings.Join(system, "\n\n"), collated
}

func main() {
	var in Input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		panic(err)
	}
	msgs := in.Messages
	if in.System != "" && (len(msgs) == 0 || msgs[0].Role != "system") {
		msgs = append([]Message{{Role: "system", Content: in.System}}, msgs...)
	}
	system, collated := collate(msgs)
	tmpl := template.Must(template.New("").Parse(in.Template))
	values := map[string]any{"System": system, "Messages": collated, "Prompt": "", "Response": "", "Tools": nil}
	if err := tmpl.Execute(os.Stdout, values); err != nil {
		panic(err)
	}
}
