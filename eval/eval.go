// Package eval measures Weft's models through the code path the API uses
// (vision.Decode, then Tag, Embed or Detect) on the held-out data: garment
// type accuracy, colour family, visual search precision and detection mAP.
package eval

import (
	"context"
	_ "embed"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"image"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/weftlabs/weft"
	"github.com/weftlabs/weft/vision"
)

// Report is what `weft eval` prints.
type Report struct {
	// TypeAccuracy is the share of held-out clothing photos whose best
	// shape label has the parent of their true type.
	TypeAccuracy float64 `json:"type_top1_parent_accuracy"`
	TypeImages   int     `json:"type_images"`
	// TypeCatalog is the same on catalog photos whose product word names
	// one of our types (catalog_types.json lists what counts as right).
	TypeCatalog       float64 `json:"type_top1_catalog"`
	TypeCatalogImages int     `json:"type_catalog_images"`
	// ColorTop2 is the share of catalog photos whose colour family is the
	// parent of one of their two best colour labels ("Multi" is skipped).
	ColorTop2   float64 `json:"color_family_in_top2"`
	ColorImages int     `json:"color_images"`
	// SearchP10Type and SearchP10TypeColor are the mean precision@10 of
	// leave-one-out search on the catalog: the share of the 10 nearest
	// other photos of the same product type (the last word of the
	// product's name), and of the same type and base colour.
	SearchP10Type      float64 `json:"search_p10_type"`
	SearchP10TypeColor float64 `json:"search_p10_type_color"`
	// The same with the type word normalised (normType: "Tshirts" =
	// "T-shirt"), the reading under which the unchanged ImageNet backbone
	// scores what the targets' brief quotes for it (models/README.md).
	SearchP10NormType      float64 `json:"search_p10_normtype"`
	SearchP10NormTypeColor float64 `json:"search_p10_normtype_color"`
	SearchImages           int     `json:"search_images"`
	// DetectMAP50 is the mean over garment families of the average
	// precision at IoU 0.5 on the held-out street photos.
	DetectMAP50  float64            `json:"detect_map50"`
	DetectAP50   map[string]float64 `json:"detect_ap50"`
	DetectImages int                `json:"detect_images"`
	// DetectMainClothing and DetectMainCatalog are the shares of held-out
	// casual garment photos and of catalog photos whose most confident
	// box (served threshold; none is a miss) names the photo's garment
	// family (garmentFamilies, catalogFamilies): the detector on the two
	// kinds of photo that carry no boxes.
	DetectMainClothing       float64 `json:"detect_main_family_clothing"`
	DetectMainClothingImages int     `json:"detect_main_clothing_images"`
	DetectMainCatalog        float64 `json:"detect_main_family_catalog"`
	DetectMainCatalogImages  int     `json:"detect_main_catalog_images"`
	Seconds                  float64 `json:"seconds"`
}

// lowThreshold lets detection evaluation see the whole precision-recall
// curve, as mAP is defined; Detect alone stops at the served threshold.
const lowThreshold = 0.001

// Run evaluates v on the data under sharedDir and the splits under
// modelsDir/splits.
func Run(ctx context.Context, v weft.Vision, sharedDir, modelsDir string) (Report, error) {
	start := time.Now()
	var r Report
	var err error
	if r.TypeAccuracy, r.TypeImages, err = typeAccuracy(ctx, v, sharedDir, modelsDir); err != nil {
		return r, fmt.Errorf("type accuracy: %w", err)
	}
	if r.TypeCatalog, r.TypeCatalogImages, err = typeCatalog(ctx, v, sharedDir); err != nil {
		return r, fmt.Errorf("type on the catalog: %w", err)
	}
	if r.ColorTop2, r.ColorImages, err = colorTop2(ctx, v, sharedDir); err != nil {
		return r, fmt.Errorf("colour: %w", err)
	}
	if err = searchPrecision(ctx, v, sharedDir, &r); err != nil {
		return r, fmt.Errorf("search: %w", err)
	}
	if r.DetectMAP50, r.DetectAP50, r.DetectImages, err = detectMAP(ctx, v, sharedDir, modelsDir); err != nil {
		return r, fmt.Errorf("detection: %w", err)
	}
	if err = detectMain(ctx, v, sharedDir, modelsDir, &r); err != nil {
		return r, fmt.Errorf("detection on garment photos: %w", err)
	}
	r.Seconds = math.Round(time.Since(start).Seconds()*10) / 10
	return r, nil
}

// readCSV returns a CSV file's rows as maps from its header's names.
func readCSV(path string) ([]map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%s: empty", path)
	}
	out := make([]map[string]string, 0, len(rows)-1)
	for _, r := range rows[1:] {
		m := make(map[string]string, len(r))
		for i, k := range rows[0] {
			if i < len(r) {
				m[k] = r[i]
			}
		}
		out = append(out, m)
	}
	return out, nil
}

func readLines(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out, nil
}

func decodeFile(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, err := vision.Decode(f, vision.Limits{})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}

// parents maps each label name of one type to its parent.
func parents(v weft.Vision, typ string) map[string]string {
	m := map[string]string{}
	for _, l := range v.Labels() {
		if l.Type == typ {
			m[l.Name] = l.Parent
		}
	}
	return m
}

// topShape tags the image at path and returns the parent of its most
// confident shape label ("" when it has none).
func topShape(ctx context.Context, v weft.Vision, parent map[string]string, path string) (string, error) {
	img, err := decodeFile(path)
	if err != nil {
		return "", err
	}
	labels, err := v.Tag(ctx, img)
	if err != nil {
		return "", err
	}
	for _, l := range labels {
		if l.Type == "shape" {
			return parentOr(parent, l.Name), nil
		}
	}
	return "", nil
}

// parentOr is name's parent in parent, or name for a top-level label.
func parentOr(parent map[string]string, name string) string {
	if p := parent[name]; p != "" {
		return p
	}
	return name
}

// labelled is one evaluation photo and the truth it is scored against.
type labelled struct{ path, want string }

// clothingVal lists the held-out clothing photos with their types.
func clothingVal(shared, models string) ([]labelled, error) {
	dir := filepath.Join(shared, "data", "clothing")
	split, err := readLines(filepath.Join(models, "splits", "clothing_val.txt"))
	if err != nil {
		return nil, err
	}
	rows, err := readCSV(filepath.Join(dir, "labels.csv"))
	if err != nil {
		return nil, err
	}
	truth := map[string]string{}
	for _, r := range rows {
		truth[r["image"]] = r["label"]
	}
	out := make([]labelled, len(split))
	for i, p := range split {
		want, ok := truth[p]
		if !ok {
			return nil, fmt.Errorf("%s is in the split but not in labels.csv", p)
		}
		out[i] = labelled{filepath.Join(dir, p), want}
	}
	return out, nil
}

func typeAccuracy(ctx context.Context, v weft.Vision, shared, models string) (float64, int, error) {
	photos, err := clothingVal(shared, models)
	if err != nil {
		return 0, 0, err
	}
	parent := parents(v, "shape")
	right := 0
	for _, ph := range photos {
		got, err := topShape(ctx, v, parent, ph.path)
		if err != nil {
			return 0, 0, err
		}
		if got == parentOr(parent, ph.want) {
			right++
		}
	}
	return ratio(right, len(photos)), len(photos), nil
}

// catalogTypes maps a normalised catalog product word to the shape labels'
// parents that name it right; train/eval_tagger.py reads the same file.
var catalogTypes = table[map[string][]string]("catalog_types.json", catalogTypesJSON)

//go:embed catalog_types.json
var catalogTypesJSON []byte

func typeCatalog(ctx context.Context, v weft.Vision, shared string) (float64, int, error) {
	dir := filepath.Join(shared, "data", "catalog-val")
	rows, err := readCSV(filepath.Join(dir, "labels.csv"))
	if err != nil {
		return 0, 0, err
	}
	parent := parents(v, "shape")
	right, n := 0, 0
	for _, r := range rows {
		name := strings.Fields(r["productDisplayName"])
		if len(name) == 0 {
			continue
		}
		ok, scored := catalogTypes[normType(strings.ToLower(name[len(name)-1]))]
		if !scored {
			continue
		}
		got, err := topShape(ctx, v, parent, filepath.Join(dir, r["path"]))
		if err != nil {
			return 0, 0, err
		}
		n++
		if slices.Contains(ok, got) {
			right++
		}
	}
	return ratio(right, n), n, nil
}

// catalogFamily maps the catalog's baseColour to a colour family. The table
// lives in catalog_colours.json, which train/palette.py reads too, so the Go
// and Python evaluations score colour alike. Colours it does not list
// ("Multi") have no family and are skipped.
var catalogFamily = table[map[string]string]("catalog_colours.json", catalogColours)

// table decodes one of the JSON tables embedded from eval/.
func table[T any](name string, b []byte) T {
	var t T
	if err := json.Unmarshal(b, &t); err != nil {
		panic("eval/" + name + ": " + err.Error())
	}
	return t
}

//go:embed catalog_colours.json
var catalogColours []byte

func colorTop2(ctx context.Context, v weft.Vision, shared string) (float64, int, error) {
	dir := filepath.Join(shared, "data", "catalog-val")
	rows, err := readCSV(filepath.Join(dir, "labels.csv"))
	if err != nil {
		return 0, 0, err
	}
	parent := parents(v, "color")
	right, n := 0, 0
	for _, r := range rows {
		fam, ok := catalogFamily[r["baseColour"]]
		if !ok {
			continue
		}
		img, err := decodeFile(filepath.Join(dir, r["path"]))
		if err != nil {
			return 0, 0, err
		}
		labels, err := v.Tag(ctx, img)
		if err != nil {
			return 0, 0, err
		}
		n++
		seen := 0
		for _, l := range labels {
			if l.Type != "color" {
				continue
			}
			if parent[l.Name] == fam {
				right++
				break
			}
			if seen++; seen == 2 {
				break
			}
		}
	}
	return ratio(right, n), n, nil
}

// searchPrecision fills r's Search fields.
func searchPrecision(ctx context.Context, v weft.Vision, shared string, r *Report) error {
	dir := filepath.Join(shared, "data", "catalog-val")
	rows, err := readCSV(filepath.Join(dir, "labels.csv"))
	if err != nil {
		return err
	}
	var vecs [][]float32
	var kinds, norms, colours []string
	for start := 0; start < len(rows); start += vision.EmbedBatch {
		var imgs []image.Image
		for _, row := range rows[start:min(start+vision.EmbedBatch, len(rows))] {
			img, err := decodeFile(filepath.Join(dir, row["path"]))
			if err != nil {
				return err
			}
			imgs = append(imgs, img)
			name := strings.Fields(row["productDisplayName"])
			kind := ""
			if len(name) > 0 {
				kind = strings.ToLower(name[len(name)-1])
			}
			kinds = append(kinds, kind)
			norms = append(norms, normType(kind))
			colours = append(colours, row["baseColour"])
		}
		vs, err := v.Embed(ctx, imgs)
		if err != nil {
			return err
		}
		vecs = append(vecs, vs...)
	}
	sameType := func(q, h int) bool { return kinds[q] == kinds[h] }
	sameNorm := func(q, h int) bool { return norms[q] == norms[h] }
	p := precisionAt(vecs, 10, sameType,
		func(q, h int) bool { return sameType(q, h) && colours[q] == colours[h] },
		sameNorm,
		func(q, h int) bool { return sameNorm(q, h) && colours[q] == colours[h] })
	r.SearchP10Type, r.SearchP10TypeColor, r.SearchP10NormType, r.SearchP10NormTypeColor = p[0], p[1], p[2], p[3]
	r.SearchImages = len(vecs)
	return nil
}

// normType reads a lower-case product word loosely, hyphens dropped and the
// English plural undone, so that "tshirts", "tshirt" and "t-shirt" are one
// type, as are "watches" and "watch" (as train/eval_tagger.py's norm_type).
func normType(word string) string {
	w := strings.ReplaceAll(word, "-", "")
	for _, suffix := range []string{"ches", "shes", "sses", "xes"} {
		if strings.HasSuffix(w, suffix) {
			return w[:len(w)-2]
		}
	}
	if strings.HasSuffix(w, "ss") {
		return w
	}
	return strings.TrimSuffix(w, "s")
}

// precisionAt runs leave-one-out exact search (unit vectors, cosine) and
// returns, for each relevance judgment in rels, the mean share of each
// query's k nearest others that it calls relevant.
func precisionAt(vecs [][]float32, k int, rels ...func(q, hit int) bool) []float64 {
	sums := make([]float64, len(rels))
	if len(vecs) < 2 {
		return sums
	}
	sims := make([]float64, len(vecs))
	idx := make([]int, len(vecs))
	for q := range vecs {
		for i, v := range vecs {
			var dot float64
			for j := range v {
				dot += float64(v[j]) * float64(vecs[q][j])
			}
			sims[i] = dot
			idx[i] = i
		}
		sims[q] = math.Inf(-1)
		sort.SliceStable(idx, func(a, b int) bool { return sims[idx[a]] > sims[idx[b]] })
		kk := min(k, len(vecs)-1)
		for i, rel := range rels {
			hits := 0
			for _, h := range idx[:kk] {
				if rel(q, h) {
					hits++
				}
			}
			sums[i] += float64(hits) / float64(kk)
		}
	}
	for i := range sums {
		sums[i] /= float64(len(vecs))
	}
	return sums
}

type detection struct {
	score float64
	image string
	box   [4]float64
}

// minDetector is a weft.Vision whose detector takes a score threshold.
type minDetector interface {
	DetectMin(ctx context.Context, img image.Image, minScore float64) ([]weft.Box, error)
}

func detectMAP(ctx context.Context, v weft.Vision, shared, models string) (float64, map[string]float64, int, error) {
	dir := filepath.Join(shared, "data", "street")
	split, err := readLines(filepath.Join(models, "splits", "street_val.txt"))
	if err != nil {
		return 0, nil, 0, err
	}
	rows, err := readCSV(filepath.Join(dir, "boxes.csv"))
	if err != nil {
		return 0, nil, 0, err
	}
	// boxes.csv's corners are inclusive pixels; the detector's are edges.
	truth := map[string]map[string][][4]float64{} // image → family → boxes
	for _, r := range rows {
		var b [4]float64
		for i, k := range []string{"x0", "y0", "x1", "y1"} {
			f, err := strconv.ParseFloat(r[k], 64)
			if err != nil {
				return 0, nil, 0, fmt.Errorf("boxes.csv: %s = %q", k, r[k])
			}
			b[i] = f
		}
		b[2]++
		b[3]++
		if truth[r["image"]] == nil {
			truth[r["image"]] = map[string][][4]float64{}
		}
		truth[r["image"]][r["family"]] = append(truth[r["image"]][r["family"]], b)
	}
	detect := v.Detect
	if md, ok := v.(minDetector); ok {
		detect = func(ctx context.Context, img image.Image) ([]weft.Box, error) {
			return md.DetectMin(ctx, img, lowThreshold)
		}
	}
	dets := map[string][]detection{}
	for _, p := range split {
		img, err := decodeFile(filepath.Join(dir, p))
		if err != nil {
			return 0, nil, 0, err
		}
		boxes, err := detect(ctx, img)
		if err != nil {
			return 0, nil, 0, err
		}
		for _, b := range boxes {
			fam, _, _ := strings.Cut(b.Category, "-")
			dets[fam] = append(dets[fam], detection{b.Score, p, [4]float64{
				float64(b.BBox[0]), float64(b.BBox[1]), float64(b.BBox[2]), float64(b.BBox[3])}})
		}
	}
	aps := map[string]float64{}
	var sum float64
	for fam := range familiesOf(truth, split) {
		gt := map[string][][4]float64{}
		for _, p := range split {
			gt[p] = truth[p][fam]
		}
		aps[fam] = averagePrecision(dets[fam], gt, 0.5)
		sum += aps[fam]
	}
	if len(aps) == 0 {
		return 0, aps, len(split), nil
	}
	return sum / float64(len(aps)), aps, len(split), nil
}

func familiesOf(truth map[string]map[string][][4]float64, split []string) map[string]bool {
	fams := map[string]bool{}
	for _, p := range split {
		for f, bs := range truth[p] {
			if len(bs) > 0 {
				fams[f] = true
			}
		}
	}
	return fams
}

// averagePrecision is VOC's all-point interpolated AP of one family's
// detections against its ground truth, each truth box matched at most once.
func averagePrecision(dets []detection, gt map[string][][4]float64, minIoU float64) float64 {
	npos := 0
	used := map[string][]bool{}
	for im, bs := range gt {
		npos += len(bs)
		used[im] = make([]bool, len(bs))
	}
	if npos == 0 {
		return 0
	}
	ds := append([]detection(nil), dets...)
	sort.SliceStable(ds, func(i, j int) bool { return ds[i].score > ds[j].score })
	tp := 0
	var recall, precision []float64
	for i, d := range ds {
		best, bestIoU := -1, 0.0
		for j, g := range gt[d.image] {
			if o := vision.IoU(d.box, g); o > bestIoU {
				best, bestIoU = j, o
			}
		}
		if best >= 0 && bestIoU >= minIoU && !used[d.image][best] {
			used[d.image][best] = true
			tp++
		}
		recall = append(recall, float64(tp)/float64(npos))
		precision = append(precision, float64(tp)/float64(i+1))
	}
	r := append(append([]float64{0}, recall...), 1)
	p := append(append([]float64{0}, precision...), 0)
	for i := len(p) - 2; i >= 0; i-- {
		p[i] = max(p[i], p[i+1])
	}
	var ap float64
	for i := 1; i < len(r); i++ {
		if r[i] != r[i-1] {
			ap += (r[i] - r[i-1]) * p[i]
		}
	}
	return ap
}

func ratio(a, n int) float64 {
	if n == 0 {
		return 0
	}
	return float64(a) / float64(n)
}

// garmentFamilies maps a clothing photo's type to its detector family.
var garmentFamilies = map[string]string{
	"t-shirt": "top", "long sleeve": "top", "shirt": "top", "polo": "top", "undershirt": "top",
	"hoodie": "top", "bodysuit": "top", "top": "top", "blouse": "top",
	"outerwear": "outerwear", "blazer": "outerwear", "pants": "pants", "shorts": "pants",
	"shoes": "footwear", "dress": "dress", "skirt": "skirt", "hat": "hat",
}

// catalogFamilies maps a catalog subCategory to the detector families that
// name it ("|"-separated: the catalogue's topwear holds jackets, its
// innerwear briefs); subcategories the detector has no family for
// (watches, wallets, socks, jewellery …) are skipped.
var catalogFamilies = map[string]string{
	"Topwear": "top|outerwear", "Bottomwear": "pants|skirt", "Dress": "dress", "Innerwear": "top|pants",
	"Shoes": "footwear", "Sandal": "footwear", "Flip Flops": "footwear", "Bags": "bag",
	"Eyewear": "eyewear", "Belts": "belt", "Headwear": "hat", "Scarves": "scarf", "Mufflers": "scarf",
	"Stoles": "scarf",
}

// detectMain fills r's DetectMain fields.
func detectMain(ctx context.Context, v weft.Vision, shared, models string, r *Report) error {
	clothing, err := clothingVal(shared, models)
	if err != nil {
		return err
	}
	for i, ph := range clothing {
		fam, ok := garmentFamilies[ph.want]
		if !ok {
			return fmt.Errorf("%s: type %q has no detector family", ph.path, ph.want)
		}
		clothing[i].want = fam
	}
	dir := filepath.Join(shared, "data", "catalog-val")
	rows, err := readCSV(filepath.Join(dir, "labels.csv"))
	if err != nil {
		return err
	}
	var catalog []labelled
	for _, row := range rows {
		if fams, ok := catalogFamilies[row["subCategory"]]; ok {
			catalog = append(catalog, labelled{filepath.Join(dir, row["path"]), fams})
		}
	}
	if r.DetectMainClothing, err = mainFamilyShare(ctx, v, clothing); err != nil {
		return err
	}
	if r.DetectMainCatalog, err = mainFamilyShare(ctx, v, catalog); err != nil {
		return err
	}
	r.DetectMainClothingImages, r.DetectMainCatalogImages = len(clothing), len(catalog)
	return nil
}

// mainFamilyShare is the share of photos whose most confident box's family
// is one of their "|"-separated want families; no box is a miss.
func mainFamilyShare(ctx context.Context, v weft.Vision, photos []labelled) (float64, error) {
	right := 0
	for _, ph := range photos {
		img, err := decodeFile(ph.path)
		if err != nil {
			return 0, err
		}
		boxes, err := v.Detect(ctx, img)
		if err != nil {
			return 0, err
		}
		best, score := "", -1.0
		for _, b := range boxes {
			if b.Score > score {
				best, score = b.Category, b.Score
			}
		}
		fam, _, _ := strings.Cut(best, "-")
		if best != "" && slices.Contains(strings.Split(ph.want, "|"), fam) {
			right++
		}
	}
	return ratio(right, len(photos)), nil
}
