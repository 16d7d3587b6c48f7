package console

import (
	"math"
	"slices"

	"github.com/doppelhq/doppel/internal/duplicate"
)

// maxGraphNodes bounds the accounts a ring drawing shows: beyond it a picture is a hairball and the
// layout cost grows with the square. A larger ring is drawn as the maxGraphNodes accounts nearest
// the focused one, and the page says so; every pair stays in the table.
const maxGraphNodes = 60

// Drawing size, in SVG user units (the drawing scales to its box).
const (
	graphWidth  = 640
	graphHeight = 440
	graphMargin = 36
)

type graphNode struct {
	ID      string
	Label   string
	X, Y    float64
	Focus   bool
	Labeled bool
}

type graphEdge struct {
	X1, Y1, X2, Y2 float64
	// Decision is the pair's latest decision, "" when nobody decided it yet.
	Decision string
	Title    string
}

type graph struct {
	Width, Height int
	Nodes         []graphNode
	Edges         []graphEdge
	Shown, Total  int
	Links         int
	// Folded counts the accounts of a large ring not drawn, opened by FoldURL (largering.go).
	Folded  int
	FoldURL string
}

// drawRing lays the ring out with a force-directed layout (Fruchterman-Reingold), started from a
// circle in member order so that the same ring is always drawn the same way.
func drawRing(r duplicate.RingDetail, focus string) graph {
	adj := map[string][]string{}
	for _, p := range r.Pairs {
		adj[p.UserIDLow] = append(adj[p.UserIDLow], p.UserIDHigh)
		adj[p.UserIDHigh] = append(adj[p.UserIDHigh], p.UserIDLow)
	}
	shown := r.Members
	if len(shown) > maxGraphNodes {
		start := focus
		if _, ok := adj[start]; !ok {
			start = r.Members[0]
		}
		shown = nearest(adj, start, maxGraphNodes)
	}
	index := make(map[string]int, len(shown))
	for i, m := range shown {
		index[m] = i
	}
	var edges [][2]int
	var decisions []duplicate.RingPair
	for _, p := range r.Pairs {
		a, okA := index[p.UserIDLow]
		b, okB := index[p.UserIDHigh]
		if okA && okB {
			edges = append(edges, [2]int{a, b})
			decisions = append(decisions, p)
		}
	}
	pos := layout(len(shown), edges)
	g := graph{Width: graphWidth, Height: graphHeight, Shown: len(shown), Total: r.Size, Links: len(r.Pairs)}
	labelAll := len(shown) <= 24
	for i, m := range shown {
		g.Nodes = append(g.Nodes, graphNode{ID: m, Label: shorten(visibleID(m), 16), X: pos[i][0], Y: pos[i][1],
			Focus: m == focus, Labeled: labelAll || m == focus})
	}
	// Decided pairs are drawn last, over the undecided ones, so a decision is never hidden.
	order := make([]int, len(edges))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		da, db := decisions[a].LatestReview != nil, decisions[b].LatestReview != nil
		switch {
		case da == db:
			return 0
		case db:
			return -1
		}
		return 1
	})
	for _, i := range order {
		e, p := edges[i], decisions[i]
		ge := graphEdge{X1: pos[e[0]][0], Y1: pos[e[0]][1], X2: pos[e[1]][0], Y2: pos[e[1]][1],
			Title: visibleID(p.UserIDLow) + " – " + visibleID(p.UserIDHigh) + ": undecided"}
		if p.LatestReview != nil {
			ge.Decision = string(p.LatestReview.Decision)
			ge.Title = visibleID(p.UserIDLow) + " – " + visibleID(p.UserIDHigh) + ": " + decisionLabel(ge.Decision)
		}
		g.Edges = append(g.Edges, ge)
	}
	return g
}

// nearest returns up to n accounts in breadth-first order from start.
func nearest(adj map[string][]string, start string, n int) []string {
	seen := map[string]bool{start: true}
	out := []string{start}
	for i := 0; i < len(out) && len(out) < n; i++ {
		next := slices.Clone(adj[out[i]])
		slices.Sort(next)
		for _, m := range next {
			if !seen[m] && len(out) < n {
				seen[m] = true
				out = append(out, m)
			}
		}
	}
	return out
}

// layout places n nodes joined by edges inside the drawing's margins.
func layout(n int, edges [][2]int) [][2]float64 {
	pos := make([][2]float64, n)
	if n == 0 {
		return pos
	}
	w, h := float64(graphWidth-2*graphMargin), float64(graphHeight-2*graphMargin)
	for i := range pos {
		a := 2 * math.Pi * float64(i) / float64(n)
		pos[i] = [2]float64{w/2 + w/2.5*math.Cos(a), h/2 + h/2.5*math.Sin(a)}
	}
	if n > 2 {
		k := math.Sqrt(w * h / float64(n)) // ideal distance
		temp := w / 10
		const iterations = 200
		disp := make([][2]float64, n)
		for it := 0; it < iterations; it++ {
			for i := range disp {
				disp[i] = [2]float64{}
			}
			for i := 0; i < n; i++ {
				for j := i + 1; j < n; j++ {
					dx, dy := pos[i][0]-pos[j][0], pos[i][1]-pos[j][1]
					d := math.Max(math.Hypot(dx, dy), 0.01)
					f := k * k / d
					disp[i][0] += dx / d * f
					disp[i][1] += dy / d * f
					disp[j][0] -= dx / d * f
					disp[j][1] -= dy / d * f
				}
			}
			for _, e := range edges {
				a, b := e[0], e[1]
				dx, dy := pos[a][0]-pos[b][0], pos[a][1]-pos[b][1]
				d := math.Max(math.Hypot(dx, dy), 0.01)
				f := d * d / k
				disp[a][0] -= dx / d * f
				disp[a][1] -= dy / d * f
				disp[b][0] += dx / d * f
				disp[b][1] += dy / d * f
			}
			for i := range pos {
				d := math.Max(math.Hypot(disp[i][0], disp[i][1]), 0.01)
				step := math.Min(d, temp)
				// No walls: a clamped layout piles nodes along the edges; fit scales it afterwards.
				pos[i][0] += disp[i][0] / d * step
				pos[i][1] += disp[i][1] / d * step
			}
			temp *= 0.97
		}
	}
	fit(pos, w, h)
	for i := range pos {
		pos[i][0] = math.Round((pos[i][0]+graphMargin)*10) / 10
		pos[i][1] = math.Round((pos[i][1]+graphMargin)*10) / 10
	}
	return pos
}

// fit stretches the layout to fill the w x h box, keeping its proportions.
func fit(pos [][2]float64, w, h float64) {
	minX, minY, maxX, maxY := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, p := range pos {
		minX, maxX = math.Min(minX, p[0]), math.Max(maxX, p[0])
		minY, maxY = math.Min(minY, p[1]), math.Max(maxY, p[1])
	}
	spanX, spanY := maxX-minX, maxY-minY
	scale := math.Min(w/math.Max(spanX, 1), h/math.Max(spanY, 1))
	offX, offY := (w-spanX*scale)/2, (h-spanY*scale)/2
	for i := range pos {
		pos[i][0] = (pos[i][0]-minX)*scale + offX
		pos[i][1] = (pos[i][1]-minY)*scale + offY
	}
}

func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
