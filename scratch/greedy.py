import torch, time, sys
from bundleflow.cats_io import load_cats_npz
from bundleflow.baselines import optimise_prices
from bundleflow.menu import Menu, evaluate_menu, expected_values
torch.set_num_threads(2)
name=sys.argv[1]; J=int(sys.argv[2])
v,_=load_cats_npz(f'../shared/cats/{name}_single.npz')
g=torch.Generator().manual_seed(0); perm=torch.randperm(len(v),generator=g)
tr=v.subset(perm[:3000]); te=v.subset(perm[4000:5000])
m=tr.n_items; cap=tr.max_value()
at=tr.atoms[tr.values>0].float()
cand=torch.unique(torch.cat([torch.ones(1,m),at]),dim=0)
# unions of a bidder's atoms (all of them)
un=tr.atoms.any(1).float()
cand=torch.unique(torch.cat([cand,un]),dim=0)
print('cands',len(cand))
t=time.time(); V=tr.value(cand); print('V',V.shape,time.time()-t)
n=len(tr); u=torch.zeros(n,dtype=torch.float64); pay=torch.zeros(n,dtype=torch.float64)
chosen=[];prices=[]
k=torch.arange(1,n+1,dtype=torch.float64)
t=time.time()
for it in range(J):
    T=V-u[:,None]  # [n,C]
    ts,order=torch.sort(T.T,dim=1,descending=True)  # [C,n]
    po=pay[order]
    rev=ts*k - torch.cumsum(po,1)
    rev=torch.where((ts>0)&(ts<=cap),rev,torch.full_like(rev,-1e18))
    best,bi=rev.max(1)
    c=int(best.argmax()); gain=float(best[c]); P=float(ts[c,bi[c]])
    if gain<=1e-9: break
    chosen.append(c); prices.append(P)
    buy=(V[:,c]-P>=u)
    u=torch.where(buy,V[:,c]-P,u); pay=torch.where(buy,torch.full_like(pay,P),pay)
    if it%16==0: print(it,gain/n,pay.mean().item(),time.time()-t,flush=True)
B=cand[chosen]; pr=torch.tensor(prices,dtype=torch.float64)
menu=Menu(B[:,None,:],torch.ones(len(B),1,dtype=torch.float64),pr)
print('greedy train',evaluate_menu(menu,tr).revenue,'test',evaluate_menu(menu,te).revenue)
ev=expected_values(menu,tr); pr2=optimise_prices(ev,pr,cap,2)
m2=Menu(menu.bundles,menu.probs,pr2)
print('polished train',evaluate_menu(m2,tr).revenue,'test',evaluate_menu(m2,te).revenue, time.time()-t)
