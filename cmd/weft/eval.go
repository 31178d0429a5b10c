package main

import (
	"context"
	"io"

	"github.com/weftlabs/weft/eval"
)

func runEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flagSet("eval [--shared DIR] [--models DIR]",
		`Measures the models through the same code path as the API (decode, then
Tag, Embed, Detect) on the held-out splits named in models/splits: garment
type accuracy (casual photos; catalogue shots), colour family in the top
two colour labels, search precision@10 (type; type and colour), detection
mAP@0.5 on street photos and, on garment and catalogue photos, how often
the most confident box names the garment's family.`, stderr)
	shared := strFlag(fs, "shared", "../shared", "the shared data directory")
	models := strFlag(fs, "models", defaultModelsDir(), "models directory")
	threads := intFlag(fs, "threads", 0, "ONNX Runtime intra-op threads (0: one per core)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	v, err := openVision(*models, "", *threads)
	if err != nil {
		return err
	}
	defer v.Close()
	rep, err := eval.Run(ctx, v, *shared, *models)
	if err != nil {
		return err
	}
	return printJSON(stdout, rep)
}
